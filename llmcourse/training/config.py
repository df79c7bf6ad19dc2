"""The training config: one small dataclass with named presets, as the model config has.

>>> cfg = get_train_preset("course", max_steps=100)
>>> cfg.max_steps, cfg.tokens_per_step
(100, 1024)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from llmcourse.model.config import pick_preset

Schedule = Literal["cosine", "wsd", "constant"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16  # sequences per micro-batch
    context_length: int = 128
    # micro-batches per optimizer step: the step sees batch_size * grad_accum sequences
    grad_accum: int = 1
    max_steps: int = 1000
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio
    warmup_steps: int = 50
    schedule: Schedule = "cosine"
    decay_fraction: float = 0.2  # warmup-stable-decay: the last 20 % of steps decay linearly
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float | None = 1.0  # clip the global gradient norm to this; None: no clipping
    # auto: bf16 where the device supports it, fp16 + grad scaler on older GPUs, else fp32
    precision: Precision = "auto"
    compile: bool = False  # torch.compile the model (worth it on a GPU for long runs)
    # recompute each block's activations in backward: less memory, more time
    activation_checkpointing: bool = False
    eval_every: int = 100  # steps between validation losses (0: only at the end)
    eval_batches: int = 8
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end and on Ctrl-C)
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "context_length", "grad_accum", "max_steps", "eval_batches"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} is longer than the run "
                             f"(max_steps={self.max_steps})")
        if not self.lr > 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"need lr > 0 and 0 <= min_lr_ratio <= 1, got lr={self.lr}, "
                             f"min_lr_ratio={self.min_lr_ratio}")
        if self.schedule not in ("cosine", "wsd", "constant"):
            raise ValueError("schedule must be 'cosine', 'wsd' or 'constant', "
                             f"got {self.schedule!r}")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError("precision must be 'auto', 'fp32', 'bf16' or 'fp16', "
                             f"got {self.precision!r}")
        if not 0 < self.decay_fraction <= 1:
            raise ValueError(f"decay_fraction must be in (0, 1], got {self.decay_fraction}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.context_length

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The course model's recipe (llmcourse.training.course_model): one to three minutes on a
    # 2-core CPU. With warmup, a peak rate of 3e-3 beats the 1e-3 that a constant rate needs.
    "course": TrainConfig(batch_size=16, context_length=64, max_steps=1200, lr=3e-3,
                          warmup_steps=60, eval_every=200),
    # The same recipe scaled up for a GPU
    "course-gpu": TrainConfig(batch_size=64, context_length=256, max_steps=3000, lr=2e-3,
                              warmup_steps=100, eval_every=250),
    # A smoke test: seconds
    "smoke": TrainConfig(batch_size=4, context_length=32, max_steps=20, lr=3e-3, warmup_steps=2,
                         eval_every=10, eval_batches=2),
}


def get_train_preset(name: str, **overrides: Any) -> TrainConfig:
    """The training preset called `name`, with any fields replaced by `overrides`."""
    return pick_preset(TRAIN_PRESETS, name, overrides, kind="training preset")
