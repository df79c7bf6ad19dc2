"""Generative evaluation: greedy decoding until a stop rule, then exact match against the answer,
as GSM8K-style tasks are run.

The stop rule matters as much as the model: generation stops at the stop token (the chat
template's <|end|>, or end-of-text) or as soon as the text holds a stop string (a newline for a
one-line answer), and the text is cut before the first stop string. Decoding reuses the KV cache:
each new token costs one position's work, not the whole prompt's again.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from llmcourse.generate import stream_text
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
    T = model.cfg.context_length
    if not 1 <= max_new_tokens < T:
        raise ValueError(f"max_new_tokens must be in [1, {T - 1}] for a context of {T}, got "
                         f"{max_new_tokens}")
    if not prompt:
        raise ValueError("the prompt is empty: give at least the end-of-text id")
    # a model without a KV cache (the bigram floor) rereads its window at every step
    text = ""
    for piece in stream_text(model, tokenizer, list(prompt)[-(T - max_new_tokens):],
                             max_new_tokens, stop_id=stop_id, temperature=0.0,
                             use_cache=hasattr(model, "blocks")):
        text += piece
        if any(s in text for s in stop):
            break
    return cut_at_stops(text, stop)
