"""Grade whole notebooks from the command line:
`python -m llmcourse grade NOTEBOOK.ipynb [...] [--json PATH] [--gradescope PATH]`.

How a grade stays correct whatever the notebook does:
- The cases and the package's answers are computed here, in the grader's process, before any
  learner code runs, from a seed drawn fresh for each run.
- The learner's notebook runs in a separate kernel (see kernel.py). Only the inputs go in; the
  learner's function's outputs come back as plain tensors and numbers, loaded with
  torch.load(weights_only=True), and are compared here. Whatever the notebook patches (torch,
  llmcourse, `check`, print) lives and dies in its own kernel.
- The notebook's own check cells and printed output are ignored.

- The kernel runs in a sandbox where the system allows (sandbox.py): it cannot write outside its
  scratch folder, read other files, reach the network, or outlive its notebook, and it has limits
  on memory, CPU and processes.

What it does not protect against is listed in the book's page on exercises.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import torch

from llmcourse.grading.exercise import Exercise, chapter_exercises
from llmcourse.grading.feedback import CheckResult, judge, reference_cases
from llmcourse.grading.kernel import run_with_jobs
from llmcourse.grading.sandbox import (
    Limits,
    SandboxError,
    prepare_scratch,
    readable_paths,
    sandbox_command,
    sandbox_problem,
)
from llmcourse.grading.transport import from_plain, to_plain


class GradingError(ValueError):
    """The notebook cannot be graded at all (missing, not a notebook, unknown chapter)."""


# Runs inside the learner's kernel: self-contained (to_plain travels as source; nothing is imported
# from llmcourse), and sends back plain data only.
JOB_SOURCE = inspect.getsource(to_plain) + '''
def _llmcourse_grading_job(inputs, outputs, name):
    import torch
    fn = globals().get(name)
    results = []
    if not callable(fn):
        results.append(("missing", name))
    else:
        for args in torch.load(inputs, weights_only=True):
            try:
                value, kind = to_plain(fn(*args)), "ok"
            except NotImplementedError as err:
                value, kind = str(err), "not implemented"
            except BaseException as err:
                value, kind = f"{type(err).__name__}: {err}", "error"
            results.append((kind, value))
            if kind != "ok":
                break
    torch.save(results, outputs)
'''


@dataclass
class NotebookGrade:
    notebook: str
    chapter: int
    results: list[CheckResult]
    problems: list[str]  # cells that timed out or crashed the kernel
    sandboxed: bool = False

    @property
    def score(self) -> int:
        return sum(r.points for r in self.results)

    @property
    def max_score(self) -> int:
        return sum(r.max_points for r in self.results)


def read_notebook(path: Path) -> tuple[nbformat.NotebookNode, int]:
    """The notebook at `path` and its chapter, or a GradingError that says what is wrong."""
    if not path.exists():
        raise GradingError(f"{path}: no such file")
    if path.suffix != ".ipynb":
        raise GradingError(f"{path}: not a notebook (expected a .ipynb file)")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # noqa: BLE001 - JSON errors, schema errors, unreadable files
        reason = f"{type(err).__name__}: {err}"
        raise GradingError(f"{path}: not a valid Jupyter notebook ({reason})") from None
    chapter = nb.metadata.get("llmcourse", {}).get("chapter")
    if chapter is None:
        match = re.match(r"ch(\d+)", path.name)
        chapter = int(match.group(1)) if match else None
    if not isinstance(chapter, int):
        raise GradingError(f"{path}: cannot tell which chapter this notebook is for "
                           f"(no llmcourse.chapter in its metadata, "
                           f"and its name does not start with chNN)")
    try:
        chapter_exercises(chapter)
    except ValueError as err:
        raise GradingError(f"{path}: {err}") from None
    return nb, chapter


def _result_from_outputs(exercise: Exercise, cases: list[Any], status: str,
                         out_file: Path) -> CheckResult:
    if status != "ran":
        message = f"{exercise.title}: calling {exercise.function} {status}"
        return CheckResult(exercise.id, "error", message, 0, exercise.points)
    try:
        outcomes = torch.load(out_file, weights_only=True)
        well_formed = isinstance(outcomes, list) and all(
            isinstance(o, tuple) and len(o) == 2 for o in outcomes)
        if not well_formed:
            raise ValueError("unexpected structure")
    except Exception as err:  # noqa: BLE001 - missing, tampered or unloadable results
        message = (f"{exercise.title}: no usable result from {exercise.function} "
                   f"({type(err).__name__})")
        return CheckResult(exercise.id, "error", message, 0, exercise.points)
    if outcomes and outcomes[0][0] == "missing":
        message = f"{exercise.title}: the notebook does not define {exercise.function}"
        return CheckResult(exercise.id, "not attempted", message, 0, exercise.points)
    return judge(exercise, cases, [(kind, from_plain(value)) for kind, value in outcomes])


def use_sandbox(mode: str) -> bool:
    """Whether to sandbox, for mode "auto" (where the system allows), "on" (SandboxError where it
    cannot) or "off"."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"sandbox must be 'auto', 'on' or 'off', got {mode!r}")
    if mode == "off":
        return False
    problem = sandbox_problem()
    if problem and mode == "on":
        raise SandboxError(f"the sandbox was required but cannot run: {problem}")
    return problem is None


def grade_notebook(path: Path, cell_timeout: float = 120, exercise_timeout: float = 30,
                   seed: int | None = None, sandbox: bool | None = None,
                   limits: Limits = Limits()) -> NotebookGrade:
    """Grade one notebook. Its kernel runs in the sandbox if `sandbox`, or, by default (None), where
    the system allows it (`use_sandbox("auto")`)."""
    nb, chapter = read_notebook(path)
    if sandbox is None:
        sandbox = use_sandbox("auto")
    exercises = chapter_exercises(chapter)
    # computed before any learner code runs
    prepared = {ex.id: reference_cases(ex, seed) for ex in exercises}
    with tempfile.TemporaryDirectory(prefix="llmcourse-grade-") as tmp:
        workdir = path.resolve().parent
        command = None
        if sandbox:
            prepare_scratch(Path(tmp))
            command = sandbox_command(readable_paths(workdir), Path(tmp), workdir, limits)
        jobs = {}
        for ex in exercises:
            inputs, outputs = Path(tmp) / f"{ex.id}.in.pt", Path(tmp) / f"{ex.id}.out.pt"
            torch.save([args for _, args, _ in prepared[ex.id]], inputs)
            call = f"_llmcourse_grading_job({str(inputs)!r}, {str(outputs)!r}, {ex.function!r})\n"
            jobs[ex.id] = JOB_SOURCE + call
        run = run_with_jobs(nb, jobs, workdir, Path(tmp), cell_timeout, exercise_timeout, command)
        results = [_result_from_outputs(ex, prepared[ex.id], run.jobs.get(ex.id, "did not run"),
                                        Path(tmp) / f"{ex.id}.out.pt") for ex in exercises]
    failed = sorted(run.failed_cells.items())
    problems = [f"cell {i + 1} {why} and was skipped" for i, why in failed]
    return NotebookGrade(str(path), chapter, results, problems, sandboxed=sandbox)


def report_json(grades: list[NotebookGrade]) -> dict[str, Any]:
    return {
        "score": sum(g.score for g in grades),
        "max_score": sum(g.max_score for g in grades),
        "exercises": [{"notebook": g.notebook, "id": r.exercise, "status": r.status,
                       "score": r.points, "max_score": r.max_points, "message": r.message}
                      for g in grades for r in g.results],
        "notebooks": [{"notebook": g.notebook, "chapter": g.chapter, "score": g.score,
                       "max_score": g.max_score, "problems": g.problems} for g in grades],
    }


def report_gradescope(grades: list[NotebookGrade]) -> dict[str, Any]:
    """Gradescope's autograder results.json format."""
    return {
        "score": sum(g.score for g in grades),
        "tests": [{"name": f"Exercise {r.exercise}", "score": r.points, "max_score": r.max_points,
                   "status": "passed" if r.status == "passed" else "failed", "output": r.message}
                  for g in grades for r in g.results],
    }


def report_csv(path: Path, grades: list[NotebookGrade]) -> None:
    """One row per notebook: its score, each exercise's points, whether it ran sandboxed, and its
    problems."""
    import csv
    import io

    ids = list(dict.fromkeys(r.exercise for g in grades for r in g.results))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["notebook", "chapter", "score", "max_score", *ids, "sandboxed", "problems"])
    for g in grades:
        points = {r.exercise: r.points for r in g.results}
        writer.writerow([g.notebook, g.chapter, g.score, g.max_score,
                         *(points.get(i, "") for i in ids),
                         "yes" if g.sandboxed else "no", "; ".join(g.problems)])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                     newline="") as tmp:
        tmp.write(out.getvalue())
    os.replace(tmp.name, path)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        json.dump(data, tmp, indent=2, ensure_ascii=False)
    os.replace(tmp.name, path)


def format_table(grade: NotebookGrade) -> str:
    sandboxed = ", sandboxed" if grade.sandboxed else ""
    lines = [f"{grade.notebook} (chapter {grade.chapter}{sandboxed})"]
    for r in grade.results:
        first_line = r.message.splitlines()[0]
        score = f"{r.points:>2}/{r.max_points:<2}"
        lines.append(f"  {r.exercise:<5} {score} {r.status:<14} {first_line}")
    lines += [f"  ! {p}" for p in grade.problems]
    lines.append(f"  total {grade.score}/{grade.max_score}")
    return "\n".join(lines)


__all__ = ["GradingError", "NotebookGrade", "grade_notebook", "read_notebook", "report_csv",
           "report_gradescope", "report_json", "use_sandbox", "write_json_atomically",
           "format_table"]
