#!/usr/bin/env bash
# Idempotent setup on Debian/Ubuntu: the system packages the book and tests use, then .venv with every Python package.
# Re-running it is cheap: it installs only what is missing or changed.
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh   # where pip would pick a CUDA wheel
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

# --- system packages -------------------------------------------------------------------------------------------
apt_missing=()
# fonts-noto-cjk and fonts-symbola: the PDF's fallback fonts for CJK and emoji (xelatex cannot use colour emoji fonts)
# g++: DeepSpeed compiles its shared-memory all-reduce for the CPU on first use
# bubblewrap: the grader's sandbox for learners' notebooks
for pkg in g++ bubblewrap texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-xetex latexmk \
           fonts-freefont-otf fonts-dejavu-core fonts-noto-cjk fonts-symbola poppler-utils libtcmalloc-minimal4; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$pkg")
done
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_missing+=(chromium)
command -v npm >/dev/null || apt_missing+=(npm)
python3 -c "import venv, ensurepip" 2>/dev/null || apt_missing+=(python3-venv)

if [ ${#apt_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "These system packages are missing and this user cannot install them:" >&2
    echo "  apt-get install -y --no-install-recommends ${apt_missing[*]}" >&2
    exit 1
  fi
  log "installing system packages: ${apt_missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${apt_missing[@]}"
fi

# --- Python environment -------------------------------------------------------------------------------------------
[ -x .venv/bin/python ] || { log "creating .venv"; python3 -m venv .venv; }
stamp=.venv/.llmcourse-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch first and pinned (constraints.txt): an unpinned torch anywhere in the tree would pull a CUDA build
  log "installing torch, then llmcourse with its book, dev, eval and deepspeed extras"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} -c constraints.txt torch
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[book,dev,eval,deepspeed]"
  echo "$want" > "$stamp"
fi
log "ready: $(.venv/bin/python -c 'import torch, llmcourse; print("llmcourse", llmcourse.__version__, "torch", torch.__version__)')"
