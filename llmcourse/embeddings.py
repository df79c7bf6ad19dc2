"""Token embeddings plus learned absolute position embeddings: the bridge from ids to the vectors attention mixes.

>>> import torch
>>> emb = TokenAndPositionEmbedding(vocab_size=10, context_length=8, d_model=4)
>>> emb(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 4])
"""
from __future__ import annotations

import torch
from torch import nn


class TokenAndPositionEmbedding(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model)  # (V, d): one learned vector per id
        self.position = nn.Embedding(context_length, d_model)  # (T_max, d): one learned vector per position
        self.vocab_size, self.context_length = vocab_size, context_length

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"token ids must be an integer tensor, got dtype {ids.dtype}")
        if ids.dim() != 2:
            raise ValueError(f"expected ids of shape (batch, time), got {tuple(ids.shape)}")
        T = ids.shape[1]
        if T > self.context_length:
            raise ValueError(f"sequence of {T} tokens is longer than the context length {self.context_length}")
        if ids.numel() and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got [{int(ids.min())}, {int(ids.max())}]")
        positions = torch.arange(T, device=ids.device)  # (T,)
        return self.token(ids) + self.position(positions)  # (B, T, d) + (T, d) broadcasts over the batch
