"""Token embeddings plus learned absolute position embeddings: the bridge from ids to the vectors
attention mixes.

>>> import torch
>>> emb = TokenAndPositionEmbedding(vocab_size=10, context_length=8, d_model=4)
>>> emb(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 4])
"""
from __future__ import annotations

import torch
from torch import nn


def check_token_ids(ids: torch.Tensor, vocab_size: int, context_length: int | None = None,
                    start: int = 0) -> None:
    """Raise a clear error unless `ids` is a (batch, time) integer tensor of ids in [0, vocab_size)
    that fits the context after `start` cached positions. An out-of-range id would otherwise surface
    as an opaque indexing error (on a GPU, a device-side assert that poisons the whole process).

    The range check reads the ids' minimum and maximum back from the device: on the CPU that is
    cheap; on an accelerator it would stall the queue at every step, so there the check is queued as
    an asynchronous assert.

    >>> check_token_ids(torch.tensor([[1, 9]]), vocab_size=5)
    Traceback (most recent call last):
    ValueError: token ids must lie in [0, 5), got [1, 9]
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int32, torch.int64):
        got = ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise TypeError(f"token ids must be an integer (int32/int64) tensor, got {got}")
    if ids.dim() != 2:
        raise ValueError(f"expected ids of shape (batch, time), got {tuple(ids.shape)}")
    if context_length is not None and start + ids.shape[1] > context_length:
        raise ValueError(f"sequence of {start + ids.shape[1]} tokens is longer than the context "
                         f"length {context_length}")
    if not ids.numel():
        return
    if ids.device.type != "cpu":
        in_range = ((ids >= 0) & (ids < vocab_size)).all()
        torch._assert_async(in_range, f"token ids must lie in [0, {vocab_size})")
        return
    low, high = torch.stack(torch.aminmax(ids)).tolist()  # one read of both numbers
    if low < 0 or high >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got [{low}, {high}]")


class TokenAndPositionEmbedding(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab_size, d_model)  # (V, d): one learned vector per id
        # (T_max, d): one learned vector per position
        self.position = nn.Embedding(context_length, d_model)
        self.vocab_size, self.context_length = vocab_size, context_length

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_token_ids(ids, self.vocab_size, self.context_length)
        positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        # (B, T, d) + (T, d) broadcasts over the batch
        return self.token(ids) + self.position(positions)
