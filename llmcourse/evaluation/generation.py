"""Generative evaluation: greedy decoding until a stop rule, then exact match against the answer,
as GSM8K-style tasks are run.

The stop rule matters as much as the model: generation stops at the stop token (the chat
template's <|end|>, or end-of-text) or as soon as the text holds a stop string (a newline for a
one-line answer), and the text is cut before the first stop string. Decoding reuses the KV cache:
each new token costs one position's work, not the whole prompt's again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from llmcourse.model.generate import generate_rows
from llmcourse.tokenizer import Tokenizer


def cut_at_stops(text: str, stop: Sequence[str]) -> str:
    """`text` up to the first occurrence of any stop string.

    >>> cut_at_stops("Hamlet\\nQuestion: who", ["Question:", "\\n"])
    'Hamlet'
    """
    for s in stop:
        text = text.split(s)[0]
    return text


@torch.no_grad()
def generate_until(model: nn.Module, tokenizer: Tokenizer, prompt: Sequence[int],
                   stop: Sequence[str] = (), stop_id: int | None = None,
                   max_new_tokens: int = 16) -> str:
    """The greedy continuation of `prompt` (token ids), cut at the stop rule. A prompt too long to
    leave room for `max_new_tokens` loses its oldest tokens."""
    return generate_until_many(model, tokenizer, [prompt], stop, stop_id, max_new_tokens)[0]


@torch.no_grad()
def generate_until_many(model: nn.Module, tokenizer: Tokenizer, prompts: Sequence[Sequence[int]],
                        stop: Sequence[str] = (), stop_id: int | None = None,
                        max_new_tokens: int = 16) -> list[str]:
    """`generate_until` for many prompts, decoded together in batches (`generate_rows`): each
    row runs to its stop id or its budget, and its text is cut at the first stop string after."""
    T = model.cfg.context_length
    if not 1 <= max_new_tokens < T:
        raise ValueError(f"max_new_tokens must be in [1, {T - 1}] for a context of {T}, got "
                         f"{max_new_tokens}")
    if not all(prompts):
        raise ValueError("a prompt is empty: give at least the end-of-text id")
    kept = [list(p)[-(T - max_new_tokens):] for p in prompts]
    # a model without a KV cache (the bigram floor) rereads its window at every step
    rows = generate_rows(model, kept, max_new_tokens, stop_id=stop_id, temperature=0.0,
                         use_cache=hasattr(model, "blocks"))
    return [cut_at_stops(tokenizer.decode(r), stop) for r in rows]
