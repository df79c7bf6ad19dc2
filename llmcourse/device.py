"""Pick where tensors live: CUDA if present, then Apple's MPS, else the CPU. Never assume a GPU.

>>> pick_device("cpu")
device(type='cpu')
"""
from __future__ import annotations

import os

import torch


def pick_device(preferred: str | None = None) -> torch.device:
    """`preferred` (or $LLMCOURSE_DEVICE) wins if given; otherwise the fastest device this machine
    has."""
    preferred = preferred or os.environ.get("LLMCOURSE_DEVICE")
    if preferred:
        device = torch.device(preferred)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("CUDA was asked for but torch.cuda.is_available() is False")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
