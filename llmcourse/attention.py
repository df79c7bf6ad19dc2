"""Masked multi-head attention: masks, the naive and fused paths, rotary position embeddings, grouped-query
attention and a KV cache.

Shapes: B batch, T query positions, S key positions, H query heads, G key/value heads (G divides H), D head width.

>>> causal_mask(3).int().tolist()  # True: this query may look at this key
[[1, 0, 0], [1, 1, 0], [1, 1, 1]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.config import ModelConfig


# --- masks --------------------------------------------------------------------------------------------------------

def causal_mask(T: int, S: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    """(T, S) bool: query t may see key s when s <= t + (S - T) (the last T of S positions are the queries)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def sliding_window_mask(T: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """Causal, and each query sees only the `window` most recent keys (itself included)."""
    return causal_mask(T, device=device) & ~causal_mask(T, device=device).tril(diagonal=-window)


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, 1, 1, T) bool from each sequence's true length: padded keys are hidden from every query."""
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[:, None, None, :]


# --- the two attention paths ----------------------------------------------------------------------------------------

def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                    dropout: float = 0.0, training: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v, with masked scores set to -inf before the softmax. q: (B, H, T, D); k, v: (B, H, S, D)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = F.dropout(weights, dropout, training)
    return weights @ v  # (B, H, T, D)


def attention_weights(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The (B, H, T, S) softmax weights alone, for looking at what attends to what."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores if mask is None else scores.masked_fill(~mask, float("-inf")), dim=-1)


# --- rotary position embeddings -----------------------------------------------------------------------------------

def rope_tables(head_dim: int, max_len: int, theta: float = 10000.0, device: torch.device | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each (max_len, head_dim): pair i of a head rotates by angle position * theta^(-2i/D)."""
    if head_dim % 2:
        raise ValueError(f"RoPE needs an even head width, got {head_dim}")
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)  # (D/2,)
    angles = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv_freq)  # (max_len, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # HF's layout: the pairs are (x_i, x_{i+D/2})
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i+D/2}) of x (..., T, D) by its position's angle; cos, sin: (T, D)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


# --- the KV cache -----------------------------------------------------------------------------------------------------

@dataclass
class KVCache:
    """Keys and values of every layer for the positions seen so far, preallocated once."""
    k: list[torch.Tensor]  # per layer (B, G, T_max, D)
    v: list[torch.Tensor]
    length: int = 0

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, device: torch.device, dtype: torch.dtype,
              max_len: int | None = None) -> "KVCache":
        """Room for `max_len` positions (default: the whole context; generation asks only for what it needs)."""
        shape = (batch, cfg.kv_heads, max_len or cfg.context_length, cfg.head_dim)
        return cls([torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)],
                   [torch.empty(shape, device=device, dtype=dtype) for _ in range(cfg.n_layer)])

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)


def kv_cache_bytes(cfg: ModelConfig, batch: int, seq_len: int, bytes_per_value: int = 2) -> int:
    """Memory of a full KV cache: 2 (K and V) x layers x batch x G heads x positions x D. GQA divides it by H/G."""
    return 2 * cfg.n_layer * batch * cfg.kv_heads * seq_len * cfg.head_dim * bytes_per_value


# --- the module -----------------------------------------------------------------------------------------------------

class MultiHeadAttention(nn.Module):
    """Causal self-attention with H query heads sharing G key/value heads (G = H: MHA, G = 1: MQA)."""

    def __init__(self, cfg: ModelConfig, layer: int = 0) -> None:
        super().__init__()
        self.H, self.G, self.D, self.layer = cfg.n_head, cfg.kv_heads, cfg.head_dim, layer
        # q, k and v of every head come from one (H + 2G) * D-wide projection: one matrix multiply instead of three,
        # which matters most when decoding one token at a time (a few large reads beat many small ones)
        self.qkv_sizes = [self.H * self.D, self.G * self.D, self.G * self.D]  # widths of q, k and v in that output
        self.qkv = nn.Linear(cfg.d_model, sum(self.qkv_sizes), bias=cfg.bias)
        self.o = nn.Linear(self.H * self.D, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.fused = True  # F.scaled_dot_product_attention (FlashAttention where available); False: naive_attention
        self.record = False  # keep the last attention weights in .weights (for figures; costs a T x S matrix)
        self.weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                cache: KVCache | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        """mask: a bool mask (T, S) or (B, 1, T, S) to use instead of the causal one (True: may attend)."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).split(self.qkv_sizes, dim=-1)
        q = q.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.G, self.D).transpose(1, 2)  # (B, G, T, D)
        v = v.view(B, T, self.G, self.D).transpose(1, 2)  # (B, G, T, D)
        start = cache.length if cache is not None else 0
        if rope is not None:
            cos, sin = rope[0][start:start + T], rope[1][start:start + T]  # this chunk's positions
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:  # append this chunk's keys and values, attend over everything so far
            cache.k[self.layer][:, :, start:start + T] = k
            cache.v[self.layer][:, :, start:start + T] = v
            k, v = cache.k[self.layer][:, :, :start + T], cache.v[self.layer][:, :, :start + T]
        S = k.shape[2]
        dropout = self.dropout if self.training else 0.0
        if self.record or not self.fused:  # the explicit way, with the weights in view
            if self.G != self.H:  # repeat each K/V head for the H/G query heads it serves
                k, v = k.repeat_interleave(self.H // self.G, dim=1), v.repeat_interleave(self.H // self.G, dim=1)
            mask = causal_mask(T, S, x.device) if mask is None else mask
            if self.record:
                self.weights = attention_weights(q, k, mask).detach()
            y = naive_attention(q, k, v, mask, dropout, self.training)
        else:
            causal = mask is None and T == S  # training: the kernel applies the causal mask itself, skipping work
            if mask is None and 1 < T < S:  # a chunk after cached keys: its queries are the last T positions
                mask = causal_mask(T, S, x.device)  # (a single new query, T == 1, may see every key: no mask)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal,
                                               enable_gqa=self.G != self.H)  # no copies of the shared K/V heads
        return self.o(y.transpose(1, 2).reshape(B, T, self.H * self.D))  # (B, T, d)
