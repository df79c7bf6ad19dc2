"""What an exercise is: the learner's function name, cases drawn at random, the package's
reference answer, and a comparison that explains the first difference. Exercises register
themselves by id ("1.2") when their chapter's module is imported.

>>> ex = get_exercise("1.1")
>>> ex.function, ex.points
('count_bigrams', 2)
"""
from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

# chapter number -> module that defines its exercises (imported on first use)
CHAPTER_MODULES = {1: "llmcourse.grading.chapter01", 2: "llmcourse.grading.chapter02",
                   3: "llmcourse.grading.chapter03", 4: "llmcourse.grading.chapter04",
                   5: "llmcourse.grading.chapter05", 6: "llmcourse.grading.chapter06",
                   7: "llmcourse.grading.chapter07", 8: "llmcourse.grading.chapter08",
                   9: "llmcourse.grading.chapter09", 10: "llmcourse.grading.chapter10"}

Case = tuple[str, tuple[Any, ...]]  # (label shown when it fails, positional arguments)
# (expected, got) -> None if right, else what is wrong
Compare = Callable[[Any, Any], str | None]


@dataclass(frozen=True)
class Exercise:
    """One exercise. A chapter declares each as `register(Exercise(id, title, function,
    points=..., reference=..., compare=..., cases=..., hint=...))`: the answer and how a result
    is compared with it, the cases it is tried on, and the hint shown when a case fails."""

    id: str
    title: str
    function: str  # the name the learner's notebook defines
    points: int
    # inputs: plain tensors, numbers, strings, lists and dicts only
    cases: Callable[[torch.Generator], list[Case]]
    reference: Callable[..., Any]  # the package's answer for one case
    compare: Compare
    hint: str

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])

    def stub_message(self) -> str:
        # short: fits the 88-column cells
        return f"Exercise {self.id}: replace this line with your code"


_REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    if exercise.id in _REGISTRY:
        raise ValueError(f"exercise {exercise.id} is registered twice")
    _REGISTRY[exercise.id] = exercise
    return exercise


def chapter_exercises(chapter: int) -> list[Exercise]:
    """The exercises of `chapter`, in order."""
    if chapter not in CHAPTER_MODULES:
        raise ValueError(f"chapter {chapter} has no exercises; chapters with exercises: "
                         f"{', '.join(map(str, sorted(CHAPTER_MODULES)))}")
    importlib.import_module(CHAPTER_MODULES[chapter])
    return sorted((e for e in _REGISTRY.values() if e.chapter == chapter),
                  key=lambda e: tuple(int(p) for p in e.id.split(".")))


def get_exercise(exercise_id: str) -> Exercise:
    try:
        chapter = int(str(exercise_id).split(".")[0])
        return next(e for e in chapter_exercises(chapter) if e.id == exercise_id)
    except (ValueError, StopIteration):
        known = ", ".join(e.id for c in CHAPTER_MODULES for e in chapter_exercises(c))
        raise ValueError(f"unknown exercise {exercise_id!r}; the exercises are: {known}") from None


# --- comparisons: each returns None when `got` is right, else a sentence a learner can act on ---

def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:120]


def same_tensor(expected: torch.Tensor, got: Any, atol: float = 0.0,
                rtol: float = 0.0) -> str | None:
    """Exact (or, with tolerances, close) tensor equality, with the shape and the first wrong entry
    explained."""
    if not isinstance(got, torch.Tensor):
        return f"expected a torch.Tensor of shape {tuple(expected.shape)}, got {_describe(got)}"
    if got.shape != expected.shape:
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    if got.dtype.is_floating_point != expected.dtype.is_floating_point:
        kind = "floating-point" if expected.dtype.is_floating_point else "integer"
        return f"expected an {kind} tensor (like {expected.dtype}), got dtype {got.dtype}"
    diff = ~torch.isclose(got.double(), expected.double(), atol=atol, rtol=rtol, equal_nan=True)
    if diff.any():
        where = tuple(int(i) for i in diff.nonzero()[0])
        want, have = expected[where].item(), got[where].item()
        return f"at index {where} expected {want:.6g}, got {have:.6g}"
    return None


def close_number(expected: float, got: Any, rel: float = 1e-6) -> str | None:
    """A Python number or a one-element tensor close to `expected`."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            return f"expected a single number, got {_describe(got)}"
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        return f"expected a number, got {_describe(got)}"
    if math.isinf(expected) and got == expected:
        return None
    if not math.isclose(got, expected, rel_tol=rel, abs_tol=1e-12):
        return f"expected {expected:.6g}, got {got:.6g}"
    return None


def exact_int(expected: int, got: Any) -> str | None:
    if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.dtype.is_floating_point:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, int):
        return f"expected an int, got {_describe(got)}"
    if got == expected:
        return None
    return f"expected {expected:,}, got {got:,} (off by {got - expected:+,})"


def same_set(expected: set, got: Any) -> str | None:
    if not isinstance(got, (set, frozenset)):
        return f"expected a set, got {_describe(got)}"
    missing, extra = expected - got, got - expected
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {sorted(missing, key=repr)[0]!r})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {sorted(extra, key=repr)[0]!r})")
        return "the sets differ: " + ", ".join(parts)
    return None


def same_sequence(expected: Sequence[Any], got: Any) -> str | None:
    """Equal lists or tuples of plain values (ints, pairs of ints), with the first difference
    explained."""
    if not isinstance(got, (list, tuple)):
        kind = type(expected).__name__
        return f"expected a {kind} of length {len(expected)}, got {_describe(got)}"

    def normalise(xs: Sequence[Any]) -> list[Any]:
        return [tuple(x) if isinstance(x, (list, tuple)) else x for x in xs]

    want, have = normalise(expected), normalise(got)
    # the lengths may differ: the first differing item is reported, then the lengths
    for i, (a, b) in enumerate(zip(want, have, strict=False)):
        if a != b:
            return f"at position {i} expected {a!r}, got {b!r}"
    if len(want) != len(have):
        return f"expected {len(want)} items, got {len(have)}"
    return None


def same_tensors(expected: Sequence[torch.Tensor], got: Any, names: Sequence[str],
                 atol: float = 1e-5) -> str | None:
    """A tuple of tensors, each compared with same_tensor(atol); names say which one differs."""
    if not isinstance(got, (tuple, list)) or len(got) != len(expected):
        listed = ", ".join(names)
        return f"expected a tuple of {len(expected)} tensors ({listed}), got {_describe(got)}"
    for name, e, g in zip(names, expected, got, strict=True):
        problem = same_tensor(e, g, atol=atol, rtol=1e-5)
        if problem:
            return f"{name}: {problem}"
    return None


# --- comparisons with their tolerances fixed, for an exercise's `compare` ---

def close_to(rel: float) -> Compare:
    """close_number with the relative tolerance `rel`."""
    return functools.partial(close_number, rel=rel)


def tensor_close(atol: float, rtol: float) -> Compare:
    """same_tensor with the tolerances `atol` and `rtol`."""
    return functools.partial(same_tensor, atol=atol, rtol=rtol)


def tensors_close(names: Sequence[str], atol: float = 1e-5) -> Compare:
    """same_tensors for a fixed tuple of tensors called `names`."""
    return functools.partial(same_tensors, names=names, atol=atol)


def numbered_tensors_close(prefix: str, atol: float) -> Compare:
    """same_tensors for a list of any length, its tensors called "prefix 0", "prefix 1", ...

    >>> compare = numbered_tensors_close("rank", atol=0.0)
    >>> compare([torch.zeros(2)] * 2, [torch.zeros(2), torch.ones(2)])
    'rank 1: at index (0,) expected 0, got 1'
    """
    def compare(expected: Sequence[torch.Tensor], got: Any) -> str | None:
        names = [f"{prefix} {i}" for i in range(len(expected))]
        return same_tensors(expected, got, names, atol=atol)

    return compare


def describe_case(label: str, args: Sequence[Any]) -> str:
    shown = ", ".join(_describe(a) if isinstance(a, torch.Tensor) else repr(a) for a in args)
    return f"{label}: called with ({shown})"
