"""A minimal training loop: AdamW on random windows of a token array, loss recorded every step.

Part III grows this into the full trainer (warmup and cosine schedule, clipping, accumulation,
mixed precision, checkpoints, DDP/FSDP). The chapters before it only need a model that has learned
something.
"""
from __future__ import annotations

import numpy as np
import torch

from llmcourse.data.batches import random_batch
from llmcourse.progress import progress_bar


def fit(model: torch.nn.Module, tokens: np.ndarray, steps: int, batch_size: int,
        context_length: int, lr: float = 3e-3, seed: int = 0,
        device: torch.device | str = "cpu", progress: bool = True) -> list[float]:
    """Train `model` in place for `steps` AdamW steps; return the loss of every step."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in progress_bar(range(steps), progress, desc="training"):
        x, y = random_batch(tokens, batch_size, context_length, generator)
        _, loss = model(x.to(device), y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
