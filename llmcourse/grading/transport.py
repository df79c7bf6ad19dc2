"""How a learner's answer travels from their kernel to the grader: as plain data only.

`to_plain` runs inside the learner's kernel (the grader sends its source, so the kernel needs
nothing from llmcourse) and in-process for `check`, so both see answers the same way. Tensors
become plain CPU tensors; numbers, strings and None stay; lists, tuples, sets and dicts are rebuilt
from their items; anything else is refused. `from_plain` undoes the set and dict wrapping after
`torch.load(weights_only=True)`.
"""
from __future__ import annotations

from typing import Any


def to_plain(value, depth=0):
    import torch

    if depth > 6:
        raise TypeError("the answer is nested too deeply")
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().as_subclass(torch.Tensor).clone()
    if value is None or type(value) in (int, float, bool, str):
        return value
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:  # numpy scalars
        return value.item()
    if type(value) in (list, tuple):
        return type(value)(to_plain(v, depth + 1) for v in value)
    if type(value) in (set, frozenset):
        return {"__set__": [to_plain(v, depth + 1) for v in value]}
    if type(value) is dict:
        items = [(to_plain(k, depth + 1), to_plain(v, depth + 1)) for k, v in value.items()]
        return {"__dict__": items}
    raise TypeError(f"returned {type(value).__name__}, which is not a tensor, number, string, "
                    f"or a list, tuple, set or dict of them")


def from_plain(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__set__"}:
        return {from_plain(v) for v in value["__set__"]}
    if isinstance(value, dict) and set(value) == {"__dict__"}:
        return {from_plain(k): from_plain(v) for k, v in value["__dict__"]}
    if isinstance(value, (list, tuple)):
        return type(value)(from_plain(v) for v in value)
    return value
