#!/usr/bin/env bash
# README command 2: every test. Checks the package and the tests with ruff, builds the book with
# warnings as errors, then runs pytest over the unit and parity tests, the package's doctests, the
# grader against hostile notebooks, the browser and PDF checks of the built book, and every
# solution and exercise notebook under nbval. The chapters (book/) run once, in the build, which
# fails on any cell error (allow_errors: false): running them again under nbval would only double
# the time.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
export HF_HUB_OFFLINE=1  # the chapters then skip their optional downloads from the HF hub
bash scripts/setup.sh
.venv/bin/ruff check  # lines of 100 and a small rule set over the package and the tests (pyproject.toml)
.venv/bin/python tools/build_book.py --strict
.venv/bin/python -m pytest tests llmcourse solutions exercises --doctest-modules --nbval-lax -p no:cacheprovider --durations=30 "$@"
echo "[test] done in $(( $(date +%s) - start )) s"
