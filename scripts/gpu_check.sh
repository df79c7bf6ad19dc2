#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py): Ctrl-C and --resume on CUDA, torchrun on NCCL, one step of
# each fine-tuning command and the GPT-2 124M benchmark. At most 8 minutes on one GPU; without a GPU
# it says so and exits 0. Uses .venv's Python where there is one, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
python=python3
if [ -x .venv/bin/python ]; then
    python=.venv/bin/python
fi
exec timeout 480 "$python" scripts/gpu_check.py "$@"
