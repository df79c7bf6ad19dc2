"""Generate exercises/ from solutions/: the only way exercise notebooks are made (nobody edits them
by hand).

In a solution notebook, each answer sits between two marker lines naming its exercise:

    def count_bigrams(ids, vocab_size):
        ### BEGIN SOLUTION 1.1
        ...
        ### END SOLUTION

The exercise notebook gets, in its place, a stub at the same indentation that raises
`NotImplementedError("Exercise 1.1: replace this line with your code")`. Outputs are cleared, and
the `# NBVAL_CHECK_OUTPUT` markers are dropped (an unattempted exercise prints "not attempted yet",
not the solution's "passed").

>>> print(strip_solutions("def f():\\n    ### BEGIN SOLUTION 1.1\\n"
...                       "    return 1\\n    ### END SOLUTION\\n"))
def f():
    raise NotImplementedError("Exercise 1.1: replace this line with your code")
<BLANKLINE>
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat

from llmcourse.grading.exercise import get_exercise

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION (?P<id>\d+\.\d+)\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
NBVAL_MARKER = re.compile(r"^# NBVAL_CHECK_OUTPUT\s*\n?", re.MULTILINE)


def strip_solutions(source: str) -> str:
    """Replace every marked solution region in `source` with its exercise's stub."""
    out, inside = [], None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside the solution begun on "
                                 f"line {inside}")
            inside = number
            message = get_exercise(begin.group("id")).stub_message()
            stub = f'{begin.group("indent")}raise NotImplementedError({message!r})\n'
            out.append(stub.replace("'", '"'))
        elif end:
            if not inside:
                raise ValueError(f"line {number}: END SOLUTION without a BEGIN SOLUTION")
            inside = None
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"line {inside}: BEGIN SOLUTION is never ended")
    return "".join(out)


def exercise_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(solution)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = NBVAL_MARKER.sub("", strip_solutions(cell.source))
            cell.outputs, cell.execution_count = [], None
    return nb


def generate(solutions: Path, exercises: Path, check_only: bool = False) -> list[str]:
    """Write exercises/ from solutions/ (or, with check_only, write nothing). Returns what is or was
    out of date."""
    stale = []
    wanted = {}
    for path in sorted(solutions.glob("*.ipynb")):
        try:
            text = nbformat.writes(exercise_notebook(nbformat.read(path, as_version=4))) + "\n"
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        wanted[path.name] = text
    for name, text in wanted.items():
        target = exercises / name
        if not target.exists() or target.read_text() != text:
            stale.append(f"{target} is out of date")
            if not check_only:
                exercises.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    for extra in sorted(exercises.glob("*.ipynb")):
        if extra.name not in wanted:
            stale.append(f"{extra} has no solution notebook")
            if not check_only:
                extra.unlink()
    return stale
