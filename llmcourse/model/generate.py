"""Generating text: greedy, temperature, top-k and top-p sampling, with or without the KV cache.

With the cache, each step feeds only the newest token and attends over stored keys and values: O(T)
work per token instead of O(T^2). Both paths give identical tokens (tested). Each cached step then
reads every weight once, so its speed is memory bandwidth:
`llmcourse.model.weight_layout.tune_weight_layout` picks the weights' faster order in memory.

>>> top_p_filter(torch.tensor([[2.0, 1.0, 0.0, -1.0]]), 0.7).isinf().tolist()
[[False, False, True, True]]
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from llmcourse.model.attention import KVCache


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row; the rest become -inf."""
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least p (the top
    token always)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # mass before this token already >= p
    drop_sorted = cumulative - torch.softmax(sorted_logits, dim=-1) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sampling_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """The distribution that sampling draws from: softmax(logits / temperature), then top-k, then
    top-p (each optional), over the last dimension. temperature 0 puts all the mass on the argmax
    (greedy).

    >>> sampling_probs(torch.tensor([2.0, 1.0, 0.0]), temperature=1.0, top_k=2).tolist()
    [0.7310585975646973, 0.2689414322376251, 0.0]
    """
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits.float() / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,) next ids from (B, V) logits. temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _validate(model, ids: torch.Tensor, max_new_tokens: int, temperature: float, top_k, top_p,
              use_cache: bool) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"the prompt must be a (batch, time) tensor of token ids, got {got}")
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token (to start from nothing, "
                         "use the end-of-text id, which models see before every document)")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    # the last new token is returned but never fed back, so the model sees
    # prompt + max_new_tokens - 1 positions
    seen = ids.shape[1] + max_new_tokens - 1
    if use_cache and seen > model.cfg.context_length:
        raise ValueError(f"prompt ({ids.shape[1]}) plus max_new_tokens ({max_new_tokens}) "
                         f"needs {seen} positions, more than the context length "
                         f"{model.cfg.context_length}; use_cache=False slides a window over the "
                         f"last {model.cfg.context_length} tokens instead")


@torch.no_grad()
def stream(model, ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
           eos_id: int | None = None, use_cache: bool = True) -> Iterator[torch.Tensor]:
    """Yield each new (B,) batch of token ids as soon as it is chosen. Stops early once every row
    produced eos_id.

    With the cache, prompt and output must fit the context. Without it, the model reads the last
    `context_length` tokens at every step (a sliding window), so generation can run on past the
    context."""
    _validate(model, ids, max_new_tokens, temperature, top_k, top_p, use_cache)
    if max_new_tokens == 0:
        return
    was_training = model.training
    model.eval()
    window = model.cfg.context_length
    generator = torch.Generator(ids.device).manual_seed(seed) if seed is not None else None
    cache = (KVCache.empty(model.cfg, ids.shape[0], ids.device, model.tok_emb.weight.dtype,
                           ids.shape[1] + max_new_tokens - 1) if use_cache else None)
    context, done = ids, torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    try:
        prompt = ids if use_cache else ids[:, -window:]
        logits = model(prompt, cache=cache, last_only=True)[:, -1]  # (B, V)
        for step in range(max_new_tokens):
            token = next_token(logits, temperature, top_k, top_p, generator)
            if eos_id is not None:
                token = token.masked_fill(done, eos_id)  # finished rows keep emitting end-of-text
                done |= token == eos_id
            yield token
            if step == max_new_tokens - 1 or (eos_id is not None and bool(done.all())):
                return
            if use_cache:
                logits = model(token[:, None], cache=cache)[:, -1]
            else:
                # the sliding window
                context = torch.cat([context, token[:, None]], dim=1)[:, -window:]
                logits = model(context, last_only=True)[:, -1]
    finally:
        model.train(was_training)


def generate(model, ids: torch.Tensor, max_new_tokens: int,
             on_token: Callable[[torch.Tensor], None] | None = None,
             **options) -> torch.Tensor:
    """The prompt followed by up to max_new_tokens generated ids, (B, T + n). Options as in
    `stream`."""
    out = [ids]
    for token in stream(model, ids, max_new_tokens, **options):
        if on_token is not None:
            on_token(token)
        out.append(token[:, None])
    return torch.cat(out, dim=1)


def stream_text(model, tokenizer, prompt: list[int], max_new_tokens: int,
                stop_id: int | None = None, **options) -> Iterator[str]:
    """Yield the generated text piece by piece as tokens arrive, up to (not including) `stop_id`.

    A character that BPE split across tokens is held back until its last byte arrives, so no
    piece ends in half a character; the pieces join to `tokenizer.decode` of all the new ids.
    Options as in `stream` (temperature, top_k, top_p, seed, use_cache)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    out: list[int] = []
    shown = ""
    for token in stream(model, ids, max_new_tokens, eos_id=stop_id, **options):
        if token.item() == stop_id:
            break
        out.append(token.item())
        text = tokenizer.decode(out)
        if not text.endswith("\ufffd"):  # a character split across tokens: wait for its last byte
            yield text[len(shown):]
            shown = text
    rest = tokenizer.decode(out)[len(shown):]
    if rest:
        yield rest


@torch.no_grad()
def generate_rows(model, prompts: Sequence[Sequence[int]], max_new_tokens: int | Sequence[int],
                  stop_id: int | None = None, batch_size: int = 64, **options) -> list[list[int]]:
    """The new ids of every prompt, up to (not including) `stop_id`: many prompts answered at once.

    Prompts of the same length decode together, `batch_size` at a time, with no padding, so each
    row is what that prompt gives alone (greedy: the same tokens, barring a near-tie that the
    batched matrix products round the other way). max_new_tokens: one for all, or one per prompt.
    Options as in `stream`; with a `seed`, batch k samples from a generator seeded with seed + k.

    >>> from llmcourse.model.config import get_preset
    >>> from llmcourse.model.gpt import GPT
    >>> _ = torch.manual_seed(0)
    >>> model = GPT(get_preset("tiny", n_layer=1, vocab_size=50, context_length=16))
    >>> rows = generate_rows(model, [[1, 2], [3, 4], [5]], 4, temperature=0)
    >>> rows[1] == generate(model, torch.tensor([[3, 4]]), 4, temperature=0)[0, 2:].tolist()
    True
    """
    one_budget = isinstance(max_new_tokens, int)
    budgets = [max_new_tokens] * len(prompts) if one_budget else list(max_new_tokens)
    if len(budgets) != len(prompts):
        raise ValueError(f"{len(budgets)} budgets of new tokens for {len(prompts)} prompts")
    device = next(model.parameters()).device
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (prompt, budget) in enumerate(zip(prompts, budgets, strict=True)):
        groups.setdefault((len(prompt), budget), []).append(i)
    rows: list[list[int]] = [[] for _ in prompts]
    seed = options.pop("seed", None)
    batches = [(budget, members[start:start + batch_size])
               for (_, budget), members in groups.items()
               for start in range(0, len(members), batch_size)]
    for k, (budget, chunk) in enumerate(batches):
        ids = torch.tensor([list(prompts[i]) for i in chunk], device=device)
        done = [False] * len(chunk)
        # each batch its own seed: the same seed twice would draw the same random numbers
        batch_seed = None if seed is None else seed + k
        for token in stream(model, ids, budget, eos_id=stop_id, seed=batch_seed, **options):
            for row, t in enumerate(token.tolist()):
                done[row] = done[row] or t == stop_id
                if not done[row]:
                    rows[chunk[row]].append(t)
    return rows
