"""The log-probability of a continuation after a context, and of a whole text: the quantity behind
perplexity, bits per byte, multiple choice and preference accuracy.

**Where the space goes.** BPE joins a space to the word after it (" Hamlet" is one token), so a
context that ends in white space hands that space to the continuation before either is encoded,
and the continuation's ids are those of the whole text after the context's ids. The evaluation
harness (lm-eval) does the same, so the numbers compare.

**Long inputs are cut on the left.** A model reads at most `context_length` tokens: the context
loses its oldest tokens, never the continuation.

**A text longer than the context** is scored in windows (`rolling_windows`), each token exactly
once. By default each window scores `context_length` new tokens, so the first tokens of a window
see little context (lm-eval's rule); a smaller stride gives every token more context, for more
forward passes, and usually a lower loss.

>>> rolling_windows(10, context_length=4)  # (start, end, new) over [prefix] + 10 tokens
[(0, 4, 4), (4, 8, 4), (6, 10, 2)]
>>> rolling_windows(10, context_length=4, stride=2)[:3]
[(0, 4, 4), (2, 6, 2), (4, 8, 2)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from llmcourse.evaluation.stats import ratio_interval
from llmcourse.foundations.loss import bits_per_byte as nats_to_bits_per_byte
from llmcourse.tokenizer import Tokenizer

Request = tuple[Sequence[int], Sequence[int]]  # (context ids, continuation ids)


def encode_pair(tokenizer: Tokenizer, context: str, continuation: str,
                prefix_id: int) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), with the context's trailing white space moved to the
    continuation; an empty context becomes `prefix_id` alone (the end-of-text token, which every
    document follows in training).

    >>> from llmcourse.tokenizer import load_gpt2
    >>> tok = load_gpt2()
    >>> encode_pair(tok, "To be or not to ", "be", prefix_id=50256)  # " be", not " " + "be"
    ([2514, 307, 393, 407, 284], [307])
    """
    if not continuation:
        raise ValueError("the continuation is empty: there is nothing to score")
    if not context:
        return [prefix_id], tokenizer.encode_ordinary(continuation)
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode_ordinary(context + continuation)
    head = tokenizer.encode_ordinary(context)
    return head, whole[len(head):]


@torch.no_grad()
def continuation_logprobs(model: nn.Module, requests: Sequence[Request],
                          batch_size: int = 32) -> list[tuple[float, bool]]:
    """(log p(continuation | context), whether greedy decoding would write it) per request.

    The model reads the last `context_length` tokens of context + continuation (all but the very
    last token, which is only predicted). Requests run longest first, padded on the right in
    batches of `batch_size`: a causal model's real positions never see the padding after them.
    """
    T = model.cfg.context_length
    for i, (context, continuation) in enumerate(requests):
        if not context or not continuation:
            raise ValueError(f"request {i}: context and continuation need a token each (an "
                             f"empty context is the prefix id, as encode_pair gives)")
        if len(continuation) > T:
            raise ValueError(f"request {i}: a continuation of {len(continuation)} tokens cannot "
                             f"be scored by a model that reads {T}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(requests)), key=lambda i: -sum(map(len, requests[i])))
    out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            rows = [(list(requests[i][0]) + list(requests[i][1]))[-(T + 1):][:-1] for i in chunk]
            ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
            for b, row in enumerate(rows):
                ids[b, :len(row)] = torch.tensor(row)
            logp = model(ids.to(device)).float().log_softmax(-1)  # (B, T, V)
            for b, i in enumerate(chunk):
                targets = torch.tensor(requests[i][1], device=device)  # (n,)
                n, end = len(targets), len(rows[b])
                picked = logp[b, end - n:end]  # (n, V): the predictions of the continuation
                value = picked.gather(-1, targets[:, None]).sum().item()
                out[i] = (value, bool((picked.argmax(-1) == targets).all()))
    finally:
        model.train(was_training)
    return out


def rolling_windows(n_tokens: int, context_length: int,
                    stride: int | None = None) -> list[tuple[int, int, int]]:
    """Windows over s = [prefix] + tokens that predict every token once: window (start, end, new)
    reads s[start:end] and scores its last `new` predictions, s[end - new + 1:end + 1]."""
    stride = context_length if stride is None else stride
    if not 1 <= stride <= context_length:
        raise ValueError(f"stride must be in [1, context_length={context_length}], got {stride}")
    first = min(context_length, n_tokens)
    windows, done = [(0, first, first)], first
    while done < n_tokens:
        new = min(stride, n_tokens - done)
        end = done + new
        windows.append((end - context_length, end, new))
        done = end
    return windows if n_tokens else []


def rolling_requests(ids: Sequence[int], prefix_id: int, context_length: int,
                     stride: int | None = None) -> list[Request]:
    """The windows of `rolling_windows` as (context, continuation) requests."""
    s = [prefix_id, *ids]
    return [(s[start:end - new + 1], s[end - new + 1:end + 1])
            for start, end, new in rolling_windows(len(ids), context_length, stride)]


def text_logprob(model: nn.Module, ids: Sequence[int], prefix_id: int,
                 stride: int | None = None, batch_size: int = 32) -> float:
    """log p(ids | prefix) in nats, every token scored once (windows as in `rolling_windows`)."""
    requests = rolling_requests(ids, prefix_id, model.cfg.context_length, stride)
    return sum(value for value, _ in continuation_logprobs(model, requests, batch_size))


@dataclass(frozen=True)
class BitsPerByte:
    value: float  # bits per UTF-8 byte over all the texts
    low: float  # a 95 % interval, from the spread between texts
    high: float
    texts: int
    tokens: int
    nats: tuple[float, ...]  # -log p of each text
    bytes: tuple[int, ...]  # UTF-8 bytes of each text


def bits_per_byte(model: nn.Module, tokenizer: Tokenizer, texts: Sequence[str], prefix_id: int,
                  stride: int | None = None, batch_size: int = 32) -> BitsPerByte:
    """Bits per byte of `texts`, each scored on its own after `prefix_id`: total nats over total
    bytes, in bits. Unlike a loss per token, it compares models with different tokenizers."""
    if len(texts) < 2:
        raise ValueError("give two or more texts: the interval comes from their spread")
    nats, sizes, tokens = [], [], 0
    for text in texts:
        ids = tokenizer.encode_ordinary(text)
        if not ids:
            raise ValueError("an empty text has no bits per byte")
        nats.append(-text_logprob(model, ids, prefix_id, stride, batch_size))
        sizes.append(len(text.encode("utf-8")))
        tokens += len(ids)
    value = nats_to_bits_per_byte(sum(nats) / tokens, sum(sizes) / tokens)
    _, low, high = ratio_interval([n / math.log(2) for n in nats], sizes)
    return BitsPerByte(value, low, high, len(texts), tokens, tuple(nats), tuple(sizes))
