"""Generating text: greedy, temperature, top-k and top-p sampling, with or without the KV cache.

With the cache, each step feeds only the newest token and attends over stored keys and values: O(T) work per token
instead of O(T^2). Both paths give identical tokens (tested). Each cached step then reads every weight once, so its
speed is memory bandwidth: `llmcourse.weight_layout.tune_weight_layout` picks the weights' faster order in memory.

>>> top_p_filter(torch.tensor([[2.0, 1.0, 0.0, -1.0]]), 0.7).isinf().tolist()
[[False, False, True, True]]
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch

from llmcourse.attention import KVCache


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; the rest become -inf."""
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least p (the top token always)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= p  # mass before this token already >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) next ids from (B, V) logits. temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


def _validate(model, ids: torch.Tensor, max_new_tokens: int, temperature: float, top_k, top_p) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if ids.shape[1] + max_new_tokens > model.cfg.context_length:
        raise ValueError(f"prompt ({ids.shape[1]}) plus max_new_tokens ({max_new_tokens}) exceeds the context "
                         f"length {model.cfg.context_length}")


@torch.no_grad()
def stream(model, ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, seed: int | None = None, eos_id: int | None = None,
           use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Yield each new (B,) batch of token ids as soon as it is chosen. Stops early once every row produced eos_id."""
    _validate(model, ids, max_new_tokens, temperature, top_k, top_p)
    was_training = model.training
    model.eval()
    generator = torch.Generator(ids.device).manual_seed(seed) if seed is not None else None
    cache = (KVCache.empty(model.cfg, ids.shape[0], ids.device, model.tok_emb.weight.dtype,
                           ids.shape[1] + max_new_tokens) if use_cache else None)
    context, done = ids, torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    try:
        logits = model(ids, cache=cache)[:, -1]
        for _ in range(max_new_tokens):
            token = next_token(logits, temperature, top_k, top_p, generator)
            if eos_id is not None:
                token = token.masked_fill(done, eos_id)  # finished rows keep emitting end-of-text
                done |= token == eos_id
            yield token
            if eos_id is not None and bool(done.all()):
                return
            context = torch.cat([context, token[:, None]], dim=1)
            logits = (model(token[:, None], cache=cache) if use_cache else model(context))[:, -1]
    finally:
        model.train(was_training)


def generate(model, ids: torch.Tensor, max_new_tokens: int, on_token: Callable[[torch.Tensor], None] | None = None,
             **options) -> torch.Tensor:
    """The prompt followed by up to max_new_tokens generated ids, (B, T + n). Options as in `stream`."""
    out = [ids]
    for token in stream(model, ids, max_new_tokens, **options):
        if on_token is not None:
            on_token(token)
        out.append(token[:, None])
    return torch.cat(out, dim=1)
