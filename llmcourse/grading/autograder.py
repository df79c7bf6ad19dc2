"""Gradescope's autograder files for one chapter: `llmcourse autograder CHAPTER OUT_DIR`.

Gradescope builds an image once with `setup.sh` (Ubuntu, as root), then, for each submission, runs
`run_autograder` with the student's files in /autograder/submission, and reads the score from
/autograder/results/results.json. Zip the two files and upload the zip as the assignment's
autograder.

Whether the sandbox runs there depends on the container Gradescope gives (bubblewrap needs
namespaces that some containers withhold); where it cannot, the grader says so in the log and
grades as without it, and the per-notebook kernel, the seeded cases and the comparison outside the
kernel still hold.
"""

from __future__ import annotations

from pathlib import Path

from llmcourse import REPOSITORY

SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (Ubuntu, as root).
set -euo pipefail
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \\
    python3 python3-venv python3-pip git bubblewrap
python3 -m venv /autograder/venv
# torch first, from the CPU wheels: the grader needs no GPU, and a CUDA build is several GB
/autograder/venv/bin/pip install -q --index-url https://download.pytorch.org/whl/cpu "torch>=2.6"
/autograder/venv/bin/pip install -q "llmcourse @ git+{repository}"
"""

RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission: every notebook submitted is graded as chapter
# {chapter}'s exercises, each in its own kernel and (where the container allows) its own sandbox;
# the score goes to results.json.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
read -ra GRADER <<< "${{LLMCOURSE:-$ROOT/venv/bin/llmcourse}}"
mkdir -p "$ROOT/results"
work=$(mktemp -d)
chmod 755 "$work"  # readable by the sandbox's user, as a notebook's own folder is
trap 'rm -rf "$work"' EXIT
shopt -s nullglob globstar
count=0
for notebook in "$ROOT"/submission/**/*.ipynb; do
  count=$((count + 1))
  # the grader tells the chapter from the notebook's metadata or a name starting with chNN
  cp "$notebook" "$work/ch{chapter:02d}_$count.ipynb"
done
if [ "$count" -eq 0 ]; then
  cat > "$ROOT/results/results.json" <<'EOF'
{{"score": 0, "output": "No notebook (.ipynb) was found in the submission: upload your notebook."}}
EOF
  exit 0
fi
"${{GRADER[@]}}" grade "$work" --gradescope "$ROOT/results/results.json"
"""


def write_autograder(chapter: int, out: Path) -> list[Path]:
    """Write setup.sh and run_autograder for `chapter` into `out` (executable); returns their
    paths."""
    from llmcourse.grading.exercise import chapter_exercises

    chapter_exercises(chapter)  # an unknown chapter is refused here, not on Gradescope
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "setup.sh": SETUP.format(repository=REPOSITORY),
        "run_autograder": RUN.format(chapter=chapter),
    }
    paths = []
    for name, text in files.items():
        path = out / name
        path.write_text(text)
        path.chmod(0o755)
        paths.append(path)
    return paths
