"""Chapter 5's exercises: RMSNorm, SwiGLU, a Llama parameter count, top-p filtering, one KV-cache
step."""
from __future__ import annotations

import torch

from llmcourse.grading.exercise import (
    Exercise,
    exact_int,
    register,
    same_tensor,
    tensor_close,
    tensors_close,
)
from llmcourse.model.attention import naive_attention
from llmcourse.model.config import ModelConfig
from llmcourse.model.generate import top_p_filter
from llmcourse.model.gpt import MLP, RMSNorm
from llmcourse.model.sizing import parameter_count


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    norm = RMSNorm(x.shape[-1], eps)
    with torch.no_grad():
        norm.weight.copy_(weight)
        return norm(x)


def _swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor,
            w_down: torch.Tensor) -> torch.Tensor:
    config = ModelConfig(d_model=x.shape[-1], n_head=1, d_ff=w_up.shape[0], mlp="swiglu",
                         bias=False)
    mlp = MLP(config)
    with torch.no_grad():
        mlp.gate.weight.copy_(w_gate), mlp.up.weight.copy_(w_up), mlp.down.weight.copy_(w_down)
        return mlp(x)


def _llama(vocab, d_model, n_layer, n_head, n_kv_head, d_ff, tied) -> int:
    config = ModelConfig(vocab_size=vocab, d_model=d_model, n_layer=n_layer, n_head=n_head,
                         n_kv_head=n_kv_head, d_ff=d_ff, norm="rmsnorm", mlp="swiglu",
                         position="rope", bias=False, tie_embeddings=tied)
    return parameter_count(config)


def _cache_step(k_cache, v_cache, q, k_new, v_new):
    k, v = torch.cat([k_cache, k_new], dim=2), torch.cat([v_cache, v_new], dim=2)
    return naive_attention(q, k, v), k, v  # the newest query may see every cached position


register(Exercise("5.1", "RMSNorm", "rms_norm", points=2,
    reference=_rms_norm, compare=tensor_close(atol=1e-5, rtol=1e-5),
    cases=lambda g: [("(2, 3, 8)",
                      (torch.randn(2, 3, 8, generator=g), torch.rand(8, generator=g), 1e-5)),
                     ("large values",
                      (100 * torch.randn(4, 16, generator=g), torch.ones(16), 1e-6))],
    hint="x / sqrt(mean(x**2 over the last dimension) + eps), times weight.",
))

register(Exercise("5.2", "SwiGLU", "swiglu", points=2,
    reference=_swiglu, compare=tensor_close(atol=1e-4, rtol=1e-5),
    cases=lambda g: [("d=8, hidden 16",
                      (torch.randn(2, 3, 8, generator=g), torch.randn(16, 8, generator=g),
                       torch.randn(16, 8, generator=g), torch.randn(8, 16, generator=g))),
                     ("d=4, hidden 12",
                      (torch.randn(5, 4, generator=g), torch.randn(12, 4, generator=g),
                       torch.randn(12, 4, generator=g), torch.randn(4, 12, generator=g)))],
    hint="weights are (out, in) like nn.Linear: down(silu(x @ w_gate.T) * (x @ w_up.T)).",
))

register(Exercise("5.3", "Parameter count of a Llama config", "llama_parameters", points=3,
    reference=_llama, compare=exact_int,
    cases=lambda g: [("Llama 2 7B", (32000, 4096, 32, 32, 32, 11008, False)),
                     ("the 1.2B preset (GQA, tied)", (128256, 2048, 16, 32, 8, 8192, True)),
                     ("a small GQA config", (1000, 64, 2, 4, 2, 172, False))],
    hint="per layer: q and o are d x d, k and v are d x (kv_heads * head_dim), gate/up/down are "
         "3 x d x d_ff, two RMSNorm weights of d; plus embeddings, a final norm, and an untied "
         "head of vocab x d. No biases.",
))

register(Exercise("5.4", "Top-p filtering", "top_p", points=2,
    reference=top_p_filter, compare=same_tensor,
    cases=lambda g: [(f"p={p}", (torch.randn(3, 20, generator=g), p)) for p in (0.1, 0.5, 0.9)]
                    + [("p=1 keeps everything", (torch.randn(2, 10, generator=g), 1.0))],
    hint="sort probabilities in descending order; keep a token if the probability mass before it "
         "is below p (so the top token always stays); set the other logits to -inf, in the "
         "original order.",
))

register(Exercise("5.5", "One step with a KV cache", "kv_cache_step", points=3,
    reference=_cache_step, compare=tensors_close(("output", "keys", "values")),
    cases=lambda g: [(f"{S} cached positions",
                      tuple(torch.randn(1, 2, n, 8, generator=g) for n in (S, S, 1, 1, 1)))
                     for S in (1, 6)],
    hint="append k_new and v_new to the caches along the time dimension (dim 2), then attend with "
         "q over all of them (no mask: the newest token may see every earlier one). "
         "Return (output, keys, values).",
))
