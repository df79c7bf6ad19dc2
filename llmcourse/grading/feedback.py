"""Instant feedback inside a notebook: `check("1.2", my_function)` runs the exercise's cases
against the package's reference and prints one clear line (and, on failure, the first failing case
and a hint).

A check never raises and never hangs the notebook: every learner call runs under a time limit, and
anything the learner's code raises is reported, not propagated. It runs in the learner's own
kernel, so it is feedback, not a grade: `python -m llmcourse grade` grades in a separate process
that learner code cannot reach.
"""
from __future__ import annotations

import contextlib
import secrets
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from llmcourse.grading.exercise import Exercise, describe_case, get_exercise
from llmcourse.grading.transport import from_plain, to_plain

DEFAULT_TIME_LIMIT = 10.0  # seconds for all of one exercise's cases


class CheckTimeout(Exception):
    pass


@dataclass(frozen=True)
class CheckResult:
    exercise: str
    status: str  # "passed", "failed", "not attempted", "error", "timed out"
    message: str
    points: int
    max_points: int

    def line(self) -> str:
        mark = {"passed": "✅", "not attempted": "⬜"}.get(self.status, "❌")
        return f"{mark} Exercise {self.exercise}: {self.message}"


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout in this thread after `seconds`. Uses SIGALRM where it can (Unix, main
    thread), which also stops a pure-Python infinite loop; elsewhere the limit is checked when the
    call returns."""
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def on_alarm(signum: int, frame: Any) -> None:
            raise CheckTimeout()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    else:  # pragma: no cover - Windows or a worker thread
        import time

        start = time.monotonic()
        yield
        if time.monotonic() - start > seconds:
            raise CheckTimeout()


def outcome_of_call(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    """Call learner code once: ("ok", value), ("not implemented", message) or
    ("error", "Type: message")."""
    try:
        # the same view of the answer as the grader's
        return "ok", from_plain(to_plain(function(*args)))
    except NotImplementedError as err:
        return "not implemented", str(err)
    except CheckTimeout:
        raise
    except BaseException as err:  # noqa: BLE001 - reports SystemExit and KeyboardInterrupt too
        return "error", f"{type(err).__name__}: {err}"


def judge(exercise: Exercise, cases: list[tuple[str, tuple[Any, ...], Any]],
          outcomes: list[tuple[str, Any]]) -> CheckResult:
    """Turn (case, expected) and what the learner's function did into a result. Shared by check()
    and the grader."""
    title = exercise.title
    # the calls stop at the first one that fails, so there may be fewer outcomes than cases
    for (label, args, expected), (kind, value) in zip(cases, outcomes, strict=False):
        if kind == "not implemented":
            message = f"{title}: not attempted yet"
            return CheckResult(exercise.id, "not attempted", message, 0, exercise.points)
        if kind == "timed out":
            message = f"{title}: timed out ({value}) on {describe_case(label, args)}"
            return CheckResult(exercise.id, "timed out", message, 0, exercise.points)
        if kind == "error":
            message = (f"{title}: raised {value}\n   on {describe_case(label, args)}"
                       f"\n   hint: {exercise.hint}")
            return CheckResult(exercise.id, "error", message, 0, exercise.points)
        try:
            problem = exercise.compare(expected, value)
        except Exception as err:  # noqa: BLE001 - a bizarre return value must not crash the check
            problem = f"could not compare the result: {type(err).__name__}: {err}"
        if problem:
            message = (f"{title}: {problem}\n   on {describe_case(label, args)}"
                       f"\n   hint: {exercise.hint}")
            return CheckResult(exercise.id, "failed", message, 0, exercise.points)
    if len(outcomes) < len(cases):
        message = f"{title}: no result for some cases"
        return CheckResult(exercise.id, "error", message, 0, exercise.points)
    message = f"{title}: passed all {len(cases)} cases"
    return CheckResult(exercise.id, "passed", message, exercise.points, exercise.points)


def reference_cases(exercise: Exercise,
                    seed: int | None = None) -> list[tuple[str, tuple[Any, ...], Any]]:
    """Fresh cases and the package's answer for each: computed before any learner code runs."""
    g = torch.Generator().manual_seed(secrets.randbits(62) if seed is None else seed)
    return [(label, args, exercise.reference(*_copy(args))) for label, args in exercise.cases(g)]


def _copy(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # learner code may modify its inputs in place; neither the reference nor later cases should see
    # that
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)


def run_check(exercise_id: str, function: Any,
              time_limit_s: float = DEFAULT_TIME_LIMIT) -> CheckResult:
    exercise = get_exercise(exercise_id)
    if not callable(function):
        message = (f"{exercise.title}: expected the function {exercise.function}, got "
                   f"{type(function).__name__}")
        return CheckResult(exercise.id, "error", message, 0, exercise.points)
    cases = reference_cases(exercise)
    outcomes: list[tuple[str, Any]] = []
    try:
        with time_limit(time_limit_s):
            for _, args, _ in cases:
                outcomes.append(outcome_of_call(function, _copy(args)))
                if outcomes[-1][0] != "ok":
                    break
    except CheckTimeout:
        outcomes.append(("timed out", f"limit {time_limit_s:g} s"))
    return judge(exercise, cases, outcomes)


def check(exercise_id: str, function: Any, time_limit_s: float = DEFAULT_TIME_LIMIT) -> None:
    """Check your solution to an exercise and print the verdict. Never raises: a broken check is
    reported."""
    try:
        result = run_check(exercise_id, function, time_limit_s)
    except Exception as err:  # noqa: BLE001 - e.g. an unknown id: say so, keep the notebook running
        print(f"❌ cannot check exercise {exercise_id!r}: {err}")
        return
    print(result.line())
