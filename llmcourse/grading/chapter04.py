"""Chapter 4's exercises: the causal mask, scaled dot-product attention, splitting heads, RoPE,
KV-cache size."""
from __future__ import annotations

import torch

from llmcourse.grading.exercise import Exercise, exact_int, register, same_tensor, tensor_close
from llmcourse.model.attention import (
    apply_rope,
    causal_mask,
    kv_cache_bytes,
    naive_attention,
    rope_tables,
    sliding_window_mask,
)
from llmcourse.model.config import ModelConfig


def _qkv(g: torch.Generator, B: int, H: int, T: int, D: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(B, H, T, D, generator=g) for _ in range(3))


register(Exercise("4.1", "The causal mask", "make_causal_mask", points=1,
    reference=lambda T: causal_mask(T), compare=same_tensor,
    cases=lambda g: [("T=1", (1,)), ("T=5", (5,)),
                     (f"T={int(torch.randint(6, 40, (1,), generator=g))}",
                      (int(torch.randint(6, 40, (1,), generator=g)),))],
    hint="a (T, T) bool tensor, True where query t may look at key s, i.e. s <= t: "
         "torch.ones(...).tril().",
))

register(Exercise("4.2", "Scaled dot-product attention", "attention", points=3,
    reference=naive_attention, compare=tensor_close(atol=1e-5, rtol=1e-5),
    cases=lambda g: [("causal mask, 2 heads", (*_qkv(g, 2, 2, 6, 8), causal_mask(6))),
                     ("sliding window of 3", (*_qkv(g, 1, 4, 9, 16), sliding_window_mask(9, 3))),
                     ("one position", (*_qkv(g, 1, 1, 1, 4), causal_mask(1)))],
    hint="scores = q @ k.transpose(-2, -1) / sqrt(D); set scores where the mask is False to -inf; "
         "softmax over the last dimension; multiply by v.",
))

register(Exercise("4.3", "Splitting heads", "split_heads", points=1,
    reference=lambda x, n_heads: x.view(x.shape[0], x.shape[1], n_heads, -1).transpose(1, 2),
    compare=same_tensor,
    cases=lambda g: [("(2, 5, 12) into 3 heads", (torch.randn(2, 5, 12, generator=g), 3)),
                     ("(1, 7, 64) into 8 heads", (torch.randn(1, 7, 64, generator=g), 8))],
    hint="(B, T, d) -> (B, T, H, d/H) with view, then swap the T and H dimensions: (B, H, T, d/H).",
))

register(Exercise("4.4", "Rotary position embeddings", "rope", points=3,
    reference=lambda x, theta: apply_rope(x, *rope_tables(x.shape[-1], x.shape[0], theta)),
    compare=tensor_close(atol=1e-5, rtol=1e-5),
    cases=lambda g: [("8 positions, width 4", (torch.randn(8, 4, generator=g), 10000.0)),
                     ("20 positions, width 16, theta 500000",
                      (torch.randn(20, 16, generator=g), 500000.0))],
    hint="pair i is (x[:, i], x[:, i + D/2]); at position m rotate it by the angle "
         "m * theta ** (-2i / D): x*cos + rotate_half(x)*sin, where "
         "rotate_half(x) = cat(-x[:, D/2:], x[:, :D/2]).",
))

register(Exercise("4.5", "Size of a KV cache", "kv_cache_size", points=2,
    reference=lambda layers, batch, kv_heads, head_dim, seq_len, nbytes: kv_cache_bytes(
        ModelConfig(n_layer=layers, n_head=kv_heads, d_model=kv_heads * head_dim),
        batch, seq_len, nbytes),
    compare=exact_int,
    cases=lambda g: [("Llama 1.2B shape, 4096 tokens, bf16", (16, 1, 8, 64, 4096, 2)),
                     ("GPT-2 shape, batch 4, fp32", (12, 4, 12, 64, 1024, 4)),
                     ("MQA", (32, 2, 1, 128, 8192, 2))],
    hint="two tensors (K and V) per layer, each batch x kv_heads x seq_len x head_dim values of "
         "nbytes bytes.",
))
