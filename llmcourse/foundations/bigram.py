"""A count-based bigram language model: P(next | current) is a normalised row of a count table.

It is chapter 1's whole "model": no gradients, just counting. Smoothing (`alpha`, add-alpha) keeps
unseen pairs from getting probability zero, which would make the loss infinite on held-out text.

>>> import torch
>>> counts = bigram_counts(torch.tensor([0, 1, 0, 1, 1]), vocab_size=2)
>>> counts.tolist()  # pairs (0,1), (1,0), (0,1), (1,1)
[[0, 2], [1, 1]]
>>> BigramModel.from_counts(counts, alpha=0.0).probs.tolist()
[[0.0, 1.0], [0.5, 0.5]]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from llmcourse.model.embeddings import check_token_ids


def bigram_counts(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(V, V) int64 table: counts[a, b] = number of times token b follows token a in `ids`."""
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(
            f"ids must be a 1-D integer tensor, got dtype {ids.dtype} "
            f"and shape {tuple(ids.shape)}"
        )
    check_token_ids(ids[None], vocab_size)
    pair_index = ids[:-1].long() * vocab_size + ids[1:].long()  # one bin per (current, next) pair
    counts = torch.bincount(pair_index, minlength=vocab_size * vocab_size)
    return counts.view(vocab_size, vocab_size)


@dataclass(frozen=True)
class BigramModel:
    probs: torch.Tensor  # (V, V) float64, each row sums to 1

    @classmethod
    def from_counts(cls, counts: torch.Tensor, alpha: float = 1.0) -> BigramModel:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        smoothed = counts.double() + alpha
        totals = smoothed.sum(dim=1, keepdim=True)
        # A token never followed by anything (and no smoothing) gets a uniform row rather than 0/0.
        uniform = torch.full_like(smoothed, 1.0 / smoothed.shape[1])
        return cls(torch.where(totals > 0, smoothed / totals.clamp_min(1e-300), uniform))

    @classmethod
    def fit(cls, ids: torch.Tensor, vocab_size: int, alpha: float = 1.0) -> BigramModel:
        return cls.from_counts(bigram_counts(ids, vocab_size), alpha)

    @property
    def vocab_size(self) -> int:
        return self.probs.shape[0]

    def loss(self, ids: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of each next token in `ids` given the one before it."""
        ids = torch.as_tensor(ids).long()
        if ids.numel() < 2:
            raise ValueError("need at least two tokens: one to condition on and one to predict")
        # Pick each (current, next) entry directly: taking whole rows first, as mean_nll's
        # (N, V) input would, costs gigabytes on a long text with a vocabulary of thousands.
        picked = self.probs[ids[:-1], ids[1:]]
        return -picked.log().mean()

    def sample(self, start: int, length: int,
               generator: torch.Generator | None = None) -> list[int]:
        """Draw `length` tokens after `start`, each from P(next | previous)."""
        out = [start]
        for _ in range(length):
            out.append(int(torch.multinomial(self.probs[out[-1]], 1, generator=generator)))
        return out
