"""How long training will take on this machine, measured before it starts."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch

from llmcourse.progress import bars_on
from llmcourse.training.config import TrainConfig
from llmcourse.training.trainer import Trainer


def seconds_per_step(model: torch.nn.Module, train_data: Any, cfg: TrainConfig,
                     device: torch.device | str | None = None, steps: int = 3) -> float:
    """Seconds per optimizer step of `cfg` on this machine: `steps` steps of a throwaway copy of
    `model`, timed after one warm-up step. A budget in minutes, and the time a stage model will
    take, are planned from it."""
    short = cfg.replace(max_steps=steps + 1, warmup_steps=1)
    probe = Trainer(copy.deepcopy(model), train_data, None, short, progress=False, device=device)
    probe.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        probe.train_step()
    return (time.perf_counter() - start) / steps


def announce(what: str, model: torch.nn.Module, train_data: Any, cfg: TrainConfig,
             device: torch.device | str | None = None, enabled: bool = True) -> None:
    """Say, before a stage model that this machine has not cached trains, how long it will take
    here (timed on a few steps of a copy). Silent where progress bars are off (a book build,
    TQDM_DISABLE=1)."""
    if not bars_on(enabled):
        return
    seconds = seconds_per_step(model, train_data, cfg, device) * cfg.max_steps
    print(f"Training {what} once on this machine ({cfg.max_steps:,} steps): about {seconds:.0f} s "
          f"here; it is cached for every later chapter.", flush=True)
