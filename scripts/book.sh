#!/usr/bin/env bash
# README command 1: set everything up, then build the whole book to HTML and PDF and say where both are.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
.venv/bin/python tools/build_book.py "$@"
echo "[book] done in $(( $(date +%s) - start )) s"
