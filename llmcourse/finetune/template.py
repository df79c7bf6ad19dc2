"""The chat template: how a conversation becomes tokens, with special tokens the pretrained model
has never seen, and how the model grows to read and write them.

    <|user|>
    Reverse the words.

    to be<|end|>
    <|assistant|>
    be to<|end|>

Each message opens with its role's token and closes with <|end|>. The prompt is everything up to
and including `<|assistant|>` and its newline; the response is the answer and its <|end|>, which
the model learns to write so that generation knows where to stop. The role tokens and <|end|> are
single special tokens; the messages' text is always encoded as ordinary text, so a user who types
"<|end|>" cannot end a turn.

`add_chat_tokens` gives the tokenizer the new tokens after its last id; `grow_vocabulary` gives the
model rows for them. A new row starts at the mean of the old rows (Hewitt, 2021): with a tied LM
head, the new tokens' logits then start at the average logit, so the grown model predicts exactly
what it did before, only with a little probability moved to the new tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from llmcourse.finetune.records import Conversation
from llmcourse.tokenizer import Tokenizer

ROLE_TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>"}
END = "<|end|>"
CHAT_TOKENS = (*ROLE_TOKENS.values(), END)


def add_chat_tokens(tokenizer: Tokenizer) -> Tokenizer:
    """A copy of `tokenizer` that also knows the chat tokens (ids after its last one); a tokenizer
    that has them already is returned as it is."""
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.special_tokens]
    if not missing:
        return tokenizer
    start = tokenizer.n_vocab
    special = dict(tokenizer.special_tokens) | {t: start + i for i, t in enumerate(missing)}
    return Tokenizer(tokenizer.ranks, special, tokenizer.pattern, tokenizer.name)


@torch.no_grad()
def grow_vocabulary(model: nn.Module, n_vocab: int) -> None:
    """Give llmcourse's GPT `n_vocab` rows of embedding (and LM head), in place; new rows start at
    the mean of the old ones, and a tied head stays tied."""
    old = model.tok_emb.weight
    V, d = old.shape
    if n_vocab < V:
        raise ValueError(f"the model already has {V} token rows; cannot shrink it to {n_vocab}")
    if n_vocab == V:
        return
    tied = model.lm_head.weight is model.tok_emb.weight

    def grown(weight: torch.Tensor) -> torch.Tensor:
        rows = weight.mean(dim=0, keepdim=True).expand(n_vocab - V, d)
        return torch.cat([weight, rows])  # (n_vocab, d)

    embedding = nn.Embedding(n_vocab, d, device=old.device, dtype=old.dtype)
    embedding.weight.copy_(grown(old))
    model.tok_emb = embedding
    if tied:
        model.lm_head.weight = model.tok_emb.weight  # one matrix, as before
    else:
        head = nn.Linear(d, n_vocab, bias=False, device=old.device, dtype=old.dtype)
        head.weight.copy_(grown(model.lm_head.weight))
        model.lm_head = head
    model.lm_head.out_features = n_vocab
    model.cfg = model.cfg.replace(vocab_size=n_vocab)


def _check(tokenizer: Tokenizer) -> dict[str, int]:
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.special_tokens]
    if missing:
        raise ValueError(f"the tokenizer lacks the chat tokens {missing}: use add_chat_tokens")
    return tokenizer.special_tokens


def prompt_ids(messages: Sequence[tuple[str, str]], tokenizer: Tokenizer) -> list[int]:
    """The prompt that asks for the assistant's next answer after `messages` ((role, text)
    pairs): each message in its role's tokens, then `<|assistant|>` and a newline."""
    special = _check(tokenizer)
    prompt: list[int] = []
    for role, text in messages:
        prompt += [special[ROLE_TOKENS[role]]]
        prompt += tokenizer.encode_ordinary("\n" + text)
        prompt += [special[END]] + tokenizer.encode_ordinary("\n")
    return prompt + [special[ROLE_TOKENS["assistant"]]] + tokenizer.encode_ordinary("\n")


def render(conversation: Conversation, tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of a conversation under the chat template. The tokenizer must
    have the chat tokens (add_chat_tokens)."""
    messages = [(m.role, m.content) for m in conversation.prompt_messages]
    response = tokenizer.encode_ordinary(conversation.answer) + [_check(tokenizer)[END]]
    return prompt_ids(messages, tokenizer), response
