"""The precision a run computes in: fp32, bf16 or fp16, and what 'auto' means on each device."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

PRECISION_SETTING = "LLMCOURSE_PRECISION"
PRECISIONS = ("fp32", "bf16", "fp16")


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): autocast to bf16
    then pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context that computes in `precision` (resolved: fp32, bf16 or fp16) on `device`: what
    the trainer runs its forward passes in, and whatever must compute as they do (DPO's
    reference)."""
    if precision not in PRECISIONS:
        raise ValueError(f"autocast needs a resolved precision ({PRECISIONS}), got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes bf16 where the device computes it fast, fp16 on GPUs without bf16 (Colab's
    T4), else fp32. $LLMCOURSE_PRECISION, where set, is what 'auto' means on every device:
    `LLMCOURSE_PRECISION=fp32` times a machine with fast bf16 as one without it would run. A
    precision asked for by name is kept.

    >>> from unittest import mock
    >>> cpu = torch.device("cpu")
    >>> with mock.patch.dict(os.environ, {PRECISION_SETTING: "fp32"}):
    ...     resolve_precision("auto", cpu), resolve_precision("bf16", cpu)
    ('fp32', 'bf16')
    """
    if precision != "auto":
        return precision
    forced = os.environ.get(PRECISION_SETTING, "").strip().lower()
    if forced and forced != "auto":
        if forced not in PRECISIONS:
            expected = ", ".join(("auto",) + PRECISIONS)
            raise ValueError(f"${PRECISION_SETTING}={forced!r}: expected one of {expected}")
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"
