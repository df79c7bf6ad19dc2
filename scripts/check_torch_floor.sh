#!/usr/bin/env bash
# Checks the torch floor that pyproject.toml declares: installs that oldest torch (and a transformers of its time) in
# a throwaway venv and runs the model, attention, generation and training tests under it. Not part of the test
# command: PyPI's older torch wheels carry CUDA libraries, several GB to download.
#   bash scripts/check_torch_floor.sh            # the floor read from pyproject.toml
set -euo pipefail
cd "$(dirname "$0")/.."
floor=$(grep -oP '"torch>=\K[0-9.]+' pyproject.toml)
venv=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$venv")"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q "torch==$floor.0" "transformers==4.57.1" numpy safetensors regex tqdm platformdirs \
  pytest tiktoken datasketch
"$venv/bin/pip" install -q --no-deps -e .
"$venv/bin/python" -c "import torch; print('torch', torch.__version__)"
"$venv/bin/python" -m pytest tests/test_attention.py tests/test_generate.py tests/test_model.py \
  tests/test_weight_layout.py tests/test_train.py -q -p no:cacheprovider
