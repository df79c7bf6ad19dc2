#!/usr/bin/env bash
# Peers that are not part of the course's environment, installed beside it for the benchmarks only.
# llms-from-scratch's declared dependencies pull TensorFlow and JupyterLab (~3.5 GB); its model code needs only torch,
# so it goes in with --no-deps, into benchmarks/.peers (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q --no-deps --upgrade --target benchmarks/.peers "llms-from-scratch==1.0.19"
# its chapter 5 module (train_model_simple) imports matplotlib at the top; it and its own dependencies, no others
.venv/bin/python -m pip install -q --no-deps --upgrade --target benchmarks/.peers matplotlib contourpy cycler \
  fonttools kiwisolver pyparsing
echo "peers installed in benchmarks/.peers"
