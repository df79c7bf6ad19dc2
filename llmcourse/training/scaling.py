"""A scaling experiment small enough for a CPU: models of several widths, each trained for fixed
compute budgets.

For a budget of C FLOPs, a model that costs F FLOPs per token
(`llmcourse.model.sizing.flops_per_token`, forward and backward) trains on C / F tokens. Small
models see many tokens, large ones few; at each budget one width gives the lowest loss, and those
best losses fall with C as a power law, L(C) = a C^b, a straight line on log-log axes (Kaplan et al.
2020; Hoffmann et al. 2022 for the compute-optimal split between N and D).

>>> a, b = fit_power_law([1e9, 1e10, 1e11], [4.0, 2.0, 1.0])
>>> round(b, 4), round(a * 1e9 ** b, 4)
(-0.301, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from llmcourse.model.config import ModelConfig
from llmcourse.model.gpt import GPT
from llmcourse.model.sizing import flops_per_token
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import Trainer


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(a, b) of y = a * x^b, fitted by least squares on log y against log x."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(
            f"need at least two (x, y) pairs of equal length, got {len(x)} and {len(y)}"
        )
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("a power law needs positive x and y")
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    b = float(((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum())
    return math.exp(float(ly.mean() - b * lx.mean())), b


def steps_for_budget(flops: float, model: ModelConfig, train: TrainConfig) -> int:
    """Optimizer steps that spend `flops` training `model` on steps of train.tokens_per_step tokens
    (at least 1)."""
    per_step = flops_per_token(model, train.context_length) * train.tokens_per_step
    return max(1, round(flops / per_step))


def isoflop_runs(
    shapes: dict[str, ModelConfig],
    budgets: Sequence[float],
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    train: TrainConfig,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """Train every shape for every budget from the same seed, with `train`'s recipe stretched to the
    budget's steps (warmup a tenth of the run), and measure the validation loss at the end. One
    record per run."""
    records = []
    for budget in budgets:
        for name, shape in shapes.items():
            steps = steps_for_budget(budget, shape, train)
            cfg = train.replace(max_steps=steps, warmup_steps=max(1, steps // 10), eval_every=0)
            torch.manual_seed(train.seed)
            model = GPT(shape)
            trainer = Trainer(model, train_tokens, val_tokens, cfg, progress=False, device=device)
            trainer.fit()
            evals = [m for m in trainer.history if m["kind"] == "eval"]
            records.append({
                "budget": budget,
                "shape": name,
                "params": sum(p.numel() for p in model.parameters()),
                "tokens": steps * cfg.tokens_per_step,
                "steps": steps,
                "val_loss": evals[-1]["val_loss"],
            })
    return records


def frontier(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The best run (lowest validation loss) at each budget, in budget order."""
    best: dict[float, dict[str, Any]] = {}
    for record in records:
        if record["budget"] not in best or record["val_loss"] < best[record["budget"]]["val_loss"]:
            best[record["budget"]] = record
    return [best[budget] for budget in sorted(best)]
