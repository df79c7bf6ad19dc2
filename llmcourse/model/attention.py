"""Masked multi-head attention: masks, the naive and fused paths, rotary position embeddings,
grouped-query attention and a KV cache.

Shapes: B batch, T query positions, S key positions, H query heads, G key/value heads (G divides H),
D head width.

>>> causal_mask(3).int().tolist()  # True: this query may look at this key
[[1, 0, 0], [1, 1, 0], [1, 1, 1]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.model.config import ModelConfig, RopeScaling

# --- masks ----------------------------------------------------------------------------------------

def causal_mask(T: int, S: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) bool: query t may see key s when s <= t + (S - T)
    (the last T of S positions are the queries)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def sliding_window_mask(T: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """Causal, and each query sees only the `window` most recent keys (itself included).

    >>> sliding_window_mask(4, 2).int().tolist()
    [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    if window < 1:
        raise ValueError(f"a sliding window must hold at least one key, got window={window}")
    return causal_mask(T, device=device) & ~causal_mask(T, device=device).tril(diagonal=-window)


def padding_mask(lengths: torch.Tensor, T: int, side: str = "right") -> torch.Tensor:
    """(B, 1, 1, T) bool from each sequence's true length: padded keys are hidden from every query.
    Right padding puts the pads after the tokens (training, fine-tuning); left padding puts them
    first (batched generation).

    >>> padding_mask(torch.tensor([3, 1]), 4)[:, 0, 0].int().tolist()
    [[1, 1, 1, 0], [1, 0, 0, 0]]
    >>> padding_mask(torch.tensor([3, 1]), 4, side="left")[:, 0, 0].int().tolist()
    [[0, 1, 1, 1], [0, 0, 0, 1]]
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    position = torch.arange(T, device=lengths.device)[None, :]  # (1, T)
    if side == "right":
        real = position < lengths[:, None]  # (B, T)
    else:
        real = position >= T - lengths[:, None]
    return real[:, None, None, :]


def padded_positions(lengths: torch.Tensor, T: int, side: str = "right") -> torch.Tensor:
    """(B, T) position of each token counted from its sequence's first real token (pads get 0): with
    these, a left-padded sequence sees the positions it would see alone.

    >>> padded_positions(torch.tensor([3, 1]), 4, side="left").tolist()
    [[0, 0, 1, 2], [0, 0, 0, 0]]
    """
    position = torch.arange(T, device=lengths.device)[None, :].expand(len(lengths), T)
    if side == "left":
        position = (position - (T - lengths[:, None])).clamp(min=0)
    return position


def join_causal(mask: torch.Tensor | None, T: int, S: int, device: torch.device) -> torch.Tensor:
    """The causal mask of T queries over S keys, and-ed with a caller's `mask` ((T, S), (B, 1, T, S)
    or (B, 1, 1, S)): a padding or window mask narrows what a query sees, never opens the
    future to it.

    >>> join_causal(torch.tensor([[[[True, True, False]]]]), 3, 3, None)[0, 0].int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 0]]
    """
    causal = causal_mask(T, S, device)
    if mask is None:
        return causal
    if mask.dtype != torch.bool:
        raise TypeError(f"attention masks are bool (True: may attend), got {mask.dtype}")
    if mask.shape[-1] != S or mask.shape[-2] not in (1, T):
        raise ValueError(f"a mask for {T} queries over {S} keys must end in ({T} or 1, {S}), got "
                         f"{tuple(mask.shape)}")
    return causal & mask


# --- the two attention paths ----------------------------------------------------------------------

def attention_weights(q: torch.Tensor, k: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) as (B, H, T, S) float32 weights, masked scores set to -inf first.

    The softmax runs in float32 whatever the input dtype, as in the reference implementations: in
    bf16 its exponentials and their sum keep 3 significant digits and a row's weights sum to
    1 +- 0.01. A query whose every key is hidden (a left-padded position) gets all-zero weights
    instead of softmax-over-nothing's NaN, which is what F.scaled_dot_product_attention returns
    too."""
    scores = (q @ k.transpose(-2, -1)).float() / math.sqrt(q.shape[-1])  # (B, H, T, S)
    if mask is None:
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)  # rows with no visible key


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None = None, dropout: float = 0.0,
                    training: bool = False) -> torch.Tensor:
    """The attention weights times v. q: (B, H, T, D); k, v: (B, H, S, D); mask: bool, True where a
    query may look, broadcastable to (B, H, T, S)."""
    weights = F.dropout(attention_weights(q, k, mask), dropout, training)  # (B, H, T, S)
    return weights.to(v.dtype) @ v  # (B, H, T, D)


# --- rotary position embeddings -------------------------------------------------------------------

def rope_frequencies(head_dim: int, theta: float = 10000.0, scaling: RopeScaling | None = None,
                     device: torch.device | None = None) -> torch.Tensor:
    """(D/2,) angle per position of each rotating pair: theta^(-2i/D), then Llama 3's scaling if
    given.

    Llama 3 keeps the fast rotations (they encode nearby order) and slows the rotations whose
    wavelength is longer than the original context by `factor`, so that positions beyond it look
    like ones seen in training."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head width, got {head_dim}")
    exponents = -torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim
    inv_freq = theta ** exponents  # (D/2,)
    if scaling is not None:
        wavelength = 2 * math.pi / inv_freq  # positions per full turn
        # 0 for rotations faster than original / high_freq_factor (kept), 1 for those slower than
        # original / low_freq_factor (divided by factor), a straight line in between
        slow = ((scaling.original_context / wavelength - scaling.high_freq_factor)
                / (scaling.low_freq_factor - scaling.high_freq_factor)).clamp(0, 1)
        inv_freq = inv_freq * (1 - slow) + inv_freq / scaling.factor * slow
    return inv_freq.float()


def rope_tables(head_dim: int, max_len: int, theta: float = 10000.0,
                device: torch.device | None = None,
                scaling: RopeScaling | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (max_len, head_dim): pair i of a head rotates by angle
    position * theta^(-2i/D)."""
    inv_freq = rope_frequencies(head_dim, theta, scaling, device)
    positions = torch.arange(max_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)  # (max_len, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # HF's layout: the pairs are (x_i, x_{i+D/2})
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+D/2}) of x (..., T, D) by its position's angle; cos, sin: (T, D),
    or (B, 1, T, D) when each sequence of a batch has its own positions."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


# --- the KV cache ---------------------------------------------------------------------------------

@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated once."""
    k: list[torch.Tensor]  # per layer (B, G, T_max, D)
    v: list[torch.Tensor]
    length: int = 0

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, device: torch.device, dtype: torch.dtype,
              max_len: int | None = None) -> KVCache:
        """Room for `max_len` positions (default: the whole context; generation asks only for what
        it needs)."""
        shape = (batch, cfg.kv_heads, max_len or cfg.context_length, cfg.head_dim)
        return cls([torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)],
                   [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)])

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


def kv_cache_bytes(cfg: ModelConfig, batch: int, seq_len: int, bytes_per_value: int = 2) -> int:
    """Memory of a full KV cache: 2 (K and V) x layers x batch x G heads x positions x D. GQA
    divides it by H/G."""
    return 2 * cfg.n_layer * batch * cfg.kv_heads * seq_len * cfg.head_dim * bytes_per_value


# --- the module -----------------------------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """Causal self-attention with H query heads sharing G key/value heads
    (G = H: MHA, G = 1: MQA)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0) -> None:
        super().__init__()
        self.H, self.G, self.D, self.layer = cfg.n_head, cfg.kv_heads, cfg.head_dim, layer
        # q, k and v of every head come from one (H + 2G) * D-wide projection: one matrix multiply
        # instead of three, which matters most when decoding one token at a time (a few large reads
        # beat many small ones). These are the widths of q, k and v in that output.
        self.qkv_sizes = [self.H * self.D, self.G * self.D, self.G * self.D]
        self.qkv = nn.Linear(cfg.d_model, sum(self.qkv_sizes), bias=cfg.bias)
        self.o = nn.Linear(self.H * self.D, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        # F.scaled_dot_product_attention (FlashAttention where available); False: naive_attention
        self.fused = True
        # keep the last attention weights in .weights (for figures; costs a T x S matrix)
        self.record = False
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d). rope: cos and sin for this chunk's positions, (T, D) or (B, 1, T, D).
        mask: a bool mask (T, S), (B, 1, T, S) or (B, 1, 1, S), True where a query may attend,
        joined with the causal mask."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.qkv_sizes, dim=-1)
        q = q.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.G, self.D).transpose(1, 2)  # (B, G, T, D)
        v = v.view(B, T, self.G, self.D).transpose(1, 2)  # (B, G, T, D)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:  # append this chunk's keys and values, attend over everything so far
            start = cache.length
            cache.k[self.layer][:, :, start:start + T] = k
            cache.v[self.layer][:, :, start:start + T] = v
            k, v = cache.k[self.layer][:, :, :start + T], cache.v[self.layer][:, :, :start + T]
        S = k.shape[2]
        dropout = self.dropout if self.training else 0.0
        if self.record or not self.fused:  # the explicit way, with the weights in view
            if self.G != self.H:  # repeat each K/V head for the H/G query heads it serves
                group = self.H // self.G
                k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
            allowed = join_causal(mask, T, S, x.device)
            weights = attention_weights(q, k, allowed)  # (B, H, T, S), float32
            if self.record:
                self.weights = weights.detach()
            y = F.dropout(weights, dropout, self.training).to(v.dtype) @ v  # (B, H, T, D)
        else:
            if mask is None and T == S:
                # the kernel applies the causal mask itself, skipping the hidden blocks
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True,
                                                   enable_gqa=self.G != self.H)
            else:  # a single new query (T == 1) with no mask may see every key: no mask to build
                full = None if mask is None and T == 1 else join_causal(mask, T, S, x.device)
                # enable_gqa: no copies of shared K/V heads
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=full, dropout_p=dropout,
                                                   enable_gqa=self.G != self.H)
        return self.o(y.transpose(1, 2).reshape(B, T, self.H * self.D))  # (B, T, d)
