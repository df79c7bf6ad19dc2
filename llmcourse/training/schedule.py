"""Learning-rate schedules: linear warmup, then cosine decay or warmup-stable-decay (WSD).

Warmup exists because AdamW's second-moment estimate starts from a few noisy gradients: full-size
steps on it can throw a fresh model into a bad region. Cosine decays all the way through the run;
WSD holds the peak rate and decays only at the end, so a run can be extended (or branched) without
a restart.

>>> from llmcourse.training.config import TrainConfig
>>> cfg = TrainConfig(max_steps=100, warmup_steps=10, lr=1.0, min_lr_ratio=0.1)
>>> [round(lr_at(s, cfg), 3) for s in (0, 9, 10, 55, 100)]
[0.1, 1.0, 1.0, 0.55, 0.1]
"""
from __future__ import annotations

import math

from llmcourse.training.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step `step` (0-based)."""
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    # step 0 already moves: (step + 1) / warmup, reaching the peak at the last one
    if step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (peak - floor)
    decay_start = cfg.max_steps - int(cfg.decay_fraction * cfg.max_steps)  # warmup-stable-decay
    if step < decay_start:
        return peak
    progress = min(1.0, (step - decay_start) / max(1, cfg.max_steps - decay_start))
    return peak + progress * (floor - peak)
