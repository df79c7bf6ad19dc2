"""How the weight matrices lie in memory, and picking the faster order for decoding by measuring it.

Decoding one token multiplies a single vector by every weight matrix, so each step reads all the
weights once and does two FLOPs per weight: its speed is how fast the weights stream from memory.
`nn.Linear` stores a weight (out, in) row by row. The same values stored column by column, as the
transpose of a contiguous (in, out) matrix (the layout of GPT-2's original Conv1D), are read by a
different matrix-vector kernel. Which kernel streams faster depends on the BLAS library, the dtype
and the device, so `tune_weight_layout` times both and keeps the winner. Shapes, values and outputs
stay the same; only the order of the bytes changes.

>>> layer = torch.nn.Linear(3, 2)
>>> set_weight_layout(layer, "column")

The weight is still (out, in); its neighbours in memory now go down a column:

>>> tuple(layer.weight.shape), layer.weight.stride()
((2, 3), (1, 2))
>>> weight_layout(layer)
'column'
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from llmcourse.model.attention import KVCache

if TYPE_CHECKING:
    from llmcourse.model.gpt import GPT

LAYOUTS = ("row", "column")


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def weight_layout(model: nn.Module) -> str:
    """'row' or 'column' when every Linear weight lies that way, else 'mixed'."""
    found = {"row" if m.weight.is_contiguous()
             else "column" if m.weight.t().is_contiguous()
             else "mixed"
             for m in _linears(model)}
    return found.pop() if len(found) == 1 else "mixed"


@torch.no_grad()
def set_weight_layout(model: nn.Module, layout: str) -> None:
    """Re-lay every Linear weight in place: 'row' (nn.Linear's order) or 'column' (its transpose
    made contiguous).

    The Parameter objects stay the same, so tied weights stay tied and an optimizer keeps its
    references; one copy of each matrix is made on the way."""
    if layout not in LAYOUTS:
        choices = ", ".join(LAYOUTS)
        raise ValueError(f"unknown weight layout {layout!r}; choose one of {choices}")
    for linear in _linears(model):
        w = linear.weight.data
        linear.weight.data = w.contiguous() if layout == "row" else w.t().contiguous().t()


@torch.no_grad()
def _seconds_per_token(model: GPT, steps: int) -> float:
    """The fastest of `steps` cached one-token decoding steps (the minimum is the least disturbed by
    other work)."""
    param = next(model.parameters())
    cache = KVCache.empty(model.cfg, 1, param.device, param.dtype, steps + 1)
    token = torch.zeros(1, 1, dtype=torch.long, device=param.device)
    # first touch: allocations and lazy initialisation are not the layout's cost
    model(token, cache=cache)
    # an accelerator runs its kernels asynchronously: wait for them, or the clock would time only
    # their launch
    sync = torch.accelerator.synchronize if param.device.type != "cpu" else lambda: None
    best = float("inf")
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        model(token, cache=cache)
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def tune_weight_layout(model: GPT, steps: int = 4, rounds: int = 2,
                       timer: Callable[[GPT, int], float] | None = None) -> dict[str, float]:
    """Time cached decoding steps in each layout, keep the model in the faster one, and return the
    milliseconds per token of each. Rounds alternate the layouts, so that a burst of other work on
    the machine hits both. `timer(model, steps)` gives seconds per token (default: the fastest of
    `steps` real decoding steps)."""
    timer = timer or _seconds_per_token
    was_training = model.training
    model.eval()
    timings = {layout: float("inf") for layout in LAYOUTS}
    try:
        for _ in range(rounds):
            for layout in LAYOUTS:
                set_weight_layout(model, layout)
                timings[layout] = min(timings[layout], timer(model, steps) * 1e3)
        set_weight_layout(model, min(timings, key=timings.get))
    finally:
        model.train(was_training)
    return timings
