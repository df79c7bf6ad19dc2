"""The grader's cost, one measurement per process (prints one JSON line last):

    python benchmarks/grade_bench.py {sandbox,plain}

Grades chapter 1's solutions notebook (10 points, every cell run, then the grader's calls of the
five exercise functions) with its kernel in the sandbox (bubblewrap, prlimit, an unprivileged user)
or without it, and reports the seconds, from reading the notebook to the table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "ch01_language_models.ipynb"


def main(side: str) -> dict:
    from llmcourse.grading.grader import grade_notebook

    start = time.perf_counter()
    grade = grade_notebook(NOTEBOOK, sandbox=side == "sandbox")
    seconds = time.perf_counter() - start
    if grade.score != grade.max_score:
        raise SystemExit(f"the solutions scored {grade.score}/{grade.max_score}")
    return {"seconds": seconds, "score": grade.score}


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("sandbox", "plain"):
        raise SystemExit("usage: grade_bench.py {sandbox,plain}")
    print(json.dumps(main(sys.argv[1])))
