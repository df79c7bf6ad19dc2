"""The language-modelling loss: the mean negative log-probability of the correct next token, and
perplexity.

>>> import torch
>>> log_probs = torch.log(torch.tensor([[0.5, 0.5], [0.25, 0.75]]))
>>> round(mean_nll(log_probs, torch.tensor([0, 1])).item(), 4)  # -(log 0.5 + log 0.75) / 2
0.4904
>>> round(perplexity(torch.tensor(0.4904)).item(), 3)
1.633
>>> round(bits_per_byte(2.0, bytes_per_token=4.0), 4)  # 2 nats = 2.885 bits per token, over 4 bytes
0.7213
"""
from __future__ import annotations

import math

import torch


def mean_nll(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of -log p(target) over all positions. log_probs: (..., V) log-probabilities; targets:
    (...) int ids."""
    if log_probs.shape[:-1] != targets.shape:
        raise ValueError(f"log_probs has shape {tuple(log_probs.shape)}, "
                         f"so targets must have shape "
                         f"{tuple(log_probs.shape[:-1])}, got {tuple(targets.shape)}")
    if targets.numel() == 0:
        raise ValueError("no targets: the loss of an empty sequence is undefined")
    # (...,) log p of each correct token
    picked = log_probs.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    return -picked.mean()


def perplexity(loss: torch.Tensor | float) -> torch.Tensor:
    """exp(mean NLL): the size of a uniform choice that would be as surprised as the model, on
    average."""
    return torch.exp(torch.as_tensor(loss, dtype=torch.float64))


def bits_per_byte(loss: float, bytes_per_token: float) -> float:
    """A loss in nats per token as bits per UTF-8 byte of the text: divide by ln 2 (nats to bits),
    then by the bytes each token covers. Losses per token only compare under one tokenizer; bits per
    byte compare any two."""
    if bytes_per_token <= 0:
        raise ValueError(f"bytes_per_token must be positive, got {bytes_per_token}")
    return loss / math.log(2) / bytes_per_token
