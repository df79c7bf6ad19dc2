"""The grader's sandbox against hostile notebooks: each attack fails inside the sandbox, the grade
stays right, and nothing outside changes. Where it matters, the same attack run without the sandbox
succeeds, so that each test shows what the sandbox prevents. In CI the sandbox must run (bubblewrap
is installed by the setup script).
"""

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

import llmcourse.grading.exercise
from llmcourse.grading.grader import grade_notebook
from llmcourse.grading.kernel import run_with_jobs
from llmcourse.grading.sandbox import (
    Limits,
    prepare_scratch,
    readable_paths,
    sandbox_command,
    sandbox_problem,
)

SOLUTIONS = ROOT / "solutions" / "ch01_language_models.ipynb"
FULL = 10
FAST = dict(cell_timeout=20, exercise_timeout=10)

problem = sandbox_problem()
if problem and os.environ.get("CI"):
    pytest.fail(f"CI must run the sandbox: {problem}", pytrace=False)
pytestmark = pytest.mark.skipif(problem is not None, reason=f"no sandbox here: {problem}")


def attempt(
    code: str,
    tmp_path: Path,
    sandbox: bool = True,
    limits: Limits = Limits(),
    cell_timeout: float = 20,
) -> str:
    """Run `code` as a learner's cell, then report from inside the kernel what happened: "ok", or
    the exception."""
    folder = tmp_path / "student"
    folder.mkdir(exist_ok=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    prepare_scratch(scratch)
    wrapped = (
        "try:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "    OUTCOME = 'ok'\nexcept BaseException as err:\n    OUTCOME = type(err).__name__\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(wrapped)])
    report = scratch / "outcome.txt"
    job = f"open({str(report)!r}, 'w').write(globals().get('OUTCOME', 'cell did not finish'))"
    command = sandbox_command(readable_paths(folder), scratch, folder, limits) if sandbox else None
    run_with_jobs(nb, {"report": job}, folder, scratch, cell_timeout, 10, command)
    return report.read_text() if report.exists() else "no report"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hostile(tmp_path: Path, code: str) -> Path:
    """The chapter 1 solutions with a hostile cell first: an honest notebook that also attacks."""
    nb = nbformat.read(SOLUTIONS, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(code))
    path = tmp_path / "submission" / "ch01_hostile.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_writing_into_the_installed_package_fails(tmp_path):
    target = Path(llmcourse.grading.exercise.__file__)
    before = digest(target)
    code = f"open({str(target)!r}, 'a').write('# the learner was here')"
    # not the sandbox's user's file, and a read-only file system besides
    assert attempt(code, tmp_path) in ("PermissionError", "OSError")
    grade = grade_notebook(hostile(tmp_path, code), sandbox=True, **FAST)
    assert grade.score == FULL and digest(target) == before


def test_writing_beside_the_notebook_fails(tmp_path):
    code = "open('pwned.txt', 'w').write('x')"
    assert attempt(code, tmp_path) in ("PermissionError", "OSError")
    assert attempt(code, tmp_path, sandbox=False) == "ok"  # what the sandbox prevents
    (tmp_path / "student" / "pwned.txt").unlink()
    path = hostile(tmp_path, code)
    assert grade_notebook(path, sandbox=True, **FAST).score == FULL
    assert not (path.parent / "pwned.txt").exists()


def test_reading_outside_the_allowed_view_fails(tmp_path):
    other = tmp_path / "another_student"
    other.mkdir()
    secret = other / "answers.txt"
    secret.write_text("the answers")
    code = f"print(open({str(secret)!r}).read())"
    assert attempt(code, tmp_path) == "FileNotFoundError"  # not even there
    assert attempt(code, tmp_path, sandbox=False) == "ok"
    assert grade_notebook(hostile(tmp_path, code), sandbox=True, **FAST).score == FULL


def test_no_network_not_even_the_loopback_address(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5).close()"
    try:
        assert (
            attempt(code, tmp_path) == "ConnectionRefusedError"
        )  # its own loopback: nobody listens
        assert attempt(code, tmp_path, sandbox=False) == "ok"
        listener.settimeout(0.1)
        with pytest.raises(
            socket.timeout
        ):  # nothing from the sandbox ever arrived (the control's has)
            while True:
                listener.accept()[0].close()
        assert grade_notebook(hostile(tmp_path, code), sandbox=True, **FAST).score == FULL
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()


def test_a_fork_bomb_hits_the_process_limit(tmp_path):
    code = "import os\nkids = 0\nwhile True:\n    os.fork()\n    kids += 1"
    limits = Limits(processes=64)
    # the fork fails at the limit (BlockingIOError); children spin until the cell's time runs out
    outcome = attempt(code, tmp_path, limits=limits, cell_timeout=8)
    assert outcome in ("BlockingIOError", "no report")
    start = time.monotonic()
    grade = grade_notebook(
        hostile(tmp_path, code), sandbox=True, limits=limits, cell_timeout=8, exercise_timeout=10
    )
    assert grade.score == FULL and time.monotonic() - start < 120
    assert any("cell 2" in p for p in grade.problems) or outcome == "BlockingIOError"


def test_allocating_far_more_than_the_limit_fails(tmp_path):
    code = "block = bytearray(64 * 2**30)"  # 64 GiB, more than this machine has
    assert attempt(code, tmp_path) == "MemoryError"
    assert grade_notebook(hostile(tmp_path, code), sandbox=True, **FAST).score == FULL


def test_no_process_outlives_its_notebook(tmp_path):
    marker = f"{time.time_ns() % 10**9}.5"  # a sleep nobody else runs
    code = (
        f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'], start_new_session=True,\n"
        f"                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    )

    def running():
        found = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
        return found.stdout.split()

    assert attempt(code, tmp_path) == "ok"
    time.sleep(1)
    assert running() == []  # ended with the sandbox's process namespace
    assert attempt(code, tmp_path, sandbox=False) == "ok"
    left = running()
    assert left  # without the sandbox a daemon survives the kernel
    for pid in left:
        os.kill(int(pid), 9)
    assert grade_notebook(hostile(tmp_path, code), sandbox=True, **FAST).score == FULL
    time.sleep(1)
    assert running() == []


def test_honest_notebooks_are_graded_the_same_in_and_out(tmp_path):
    inside = grade_notebook(SOLUTIONS, sandbox=True, **FAST)
    outside = grade_notebook(SOLUTIONS, sandbox=False, **FAST)
    assert inside.sandboxed and not outside.sandboxed
    assert inside.score == outside.score == FULL


def test_a_class_folder_is_graded_one_by_one_into_a_csv(tmp_path):
    import csv

    folder = tmp_path / "class"
    folder.mkdir()
    nbformat.write(nbformat.read(SOLUTIONS, as_version=4), folder / "ch01_alice.ipynb")
    nbformat.write(
        nbformat.read(ROOT / "exercises" / SOLUTIONS.name, as_version=4), folder / "ch01_bob.ipynb"
    )
    spoiler = nbformat.read(SOLUTIONS, as_version=4)  # tries to leave a file for the next student
    spoiler.cells.insert(
        1,
        nbformat.v4.new_code_cell(
            "import pathlib, tempfile\n"
            "pathlib.Path(tempfile.gettempdir(), 'planted.py').write_text('x = 1')\n"
            "open('../planted.txt', 'w')"
        ),
    )
    nbformat.write(spoiler, folder / "ch01_carol.ipynb")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmcourse",
            "grade",
            str(folder),
            "--csv",
            str(tmp_path / "c.csv"),
            "--require-sandbox",
            "--cell-timeout",
            "30",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    rows = {r["notebook"].split("/")[-1]: r for r in csv.DictReader(open(tmp_path / "c.csv"))}
    assert [
        rows[n]["score"] for n in ("ch01_alice.ipynb", "ch01_bob.ipynb", "ch01_carol.ipynb")
    ] == ["10", "0", "10"]
    assert all(r["sandboxed"] == "yes" and r["max_score"] == "10" for r in rows.values())
    assert not (tmp_path / "planted.txt").exists()


def test_gradescopes_run_autograder_on_its_own_layout(tmp_path):
    import json

    source = tmp_path / "autograder" / "source"
    subprocess.run(
        [sys.executable, "-m", "llmcourse", "autograder", "1", str(source)],
        check=True,
        capture_output=True,
    )
    assert subprocess.run(["bash", "-n", str(source / "setup.sh")]).returncode == 0
    assert "bubblewrap" in (source / "setup.sh").read_text()
    submission = tmp_path / "autograder" / "submission"
    submission.mkdir()
    nbformat.write(nbformat.read(SOLUTIONS, as_version=4), submission / "my exercises.ipynb")
    env = {
        **os.environ,
        "AUTOGRADER_ROOT": str(tmp_path / "autograder"),
        "LLMCOURSE": f"{sys.executable} -m llmcourse",
    }
    done = subprocess.run(
        ["bash", str(source / "run_autograder")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "autograder" / "results" / "results.json").read_text())
    assert results["score"] == FULL and len(results["tests"]) == 5
    (submission / "my exercises.ipynb").unlink()
    subprocess.run(
        ["bash", str(source / "run_autograder")], env=env, check=True, capture_output=True
    )
    empty = json.loads((tmp_path / "autograder" / "results" / "results.json").read_text())
    assert empty["score"] == 0 and "No notebook" in empty["output"]


def test_require_sandbox_refuses_where_it_cannot_run(tmp_path, monkeypatch):
    from llmcourse.grading.grader import use_sandbox
    from llmcourse.grading.sandbox import SandboxError

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    with pytest.raises(SandboxError, match="bubblewrap is not installed"):
        use_sandbox("on")
    assert use_sandbox("auto") is False and use_sandbox("off") is False
