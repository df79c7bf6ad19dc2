#!/usr/bin/env bash
# Peers that are not part of the course's environment, installed beside it for the benchmarks only.
# llms-from-scratch's declared dependencies pull TensorFlow and JupyterLab (~3.5 GB); its model code needs only torch,
# so it goes in with --no-deps, into benchmarks/.peers (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q --no-deps --upgrade --target benchmarks/.peers "llms-from-scratch==1.0.19"
echo "peers installed in benchmarks/.peers"
