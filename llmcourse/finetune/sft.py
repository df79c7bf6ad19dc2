"""Supervised fine-tuning with the Part III trainer, and exact-match scoring.

The trainer samples pretraining windows from a token array; for fine-tuning it samples examples
from an `InstructionBatches` instead (anything with a `sample` method), so the same loop, progress
bar, curves, checkpoints and exact resume serve both:

    tokenizer = add_chat_tokens(tokenizer)
    grow_vocabulary(model, tokenizer.n_vocab)
    train = InstructionBatches(encode_conversations(tasks.train, tokenizer, 64), pad_id=0)
    Trainer(model, train, None, get_train_preset("sft")).fit()
    exact_match(model, tokenizer, tasks.test)      # {family: (correct, total)}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llmcourse.finetune.collate import (
    Batch,
    Example,
    TooLong,
    encode_example,
    pack_examples,
    pad_batch,
)
from llmcourse.finetune.records import Conversation
from llmcourse.finetune.template import END, prompt_ids, render
from llmcourse.model.generate import generate_rows
from llmcourse.tokenizer import Tokenizer


def encode_conversations(
    conversations: Sequence[Conversation],
    tokenizer: Tokenizer,
    context_length: int,
    too_long: TooLong = "error",
) -> list[Example]:
    """Every conversation under the chat template, its loss on the answer only."""
    return [
        encode_example(*render(c, tokenizer), context_length, too_long, index=i)
        for i, c in enumerate(conversations)
    ]


class InstructionBatches:
    """Examples to draw training batches from: `batch_size` examples uniformly at random per batch
    (with replacement, as the pretraining sampler draws windows), padded, or packed into rows of
    `context_length`. Under data parallelism `rows` picks this process's share of the batch."""

    def __init__(
        self,
        examples: Sequence[Example],
        pad_id: int,
        pack: bool = False,
        context_length: int | None = None,
    ) -> None:
        if not examples:
            raise ValueError("no examples to train on")
        if pack and context_length is None:
            raise ValueError("packing needs the context_length of a row")
        self.examples, self.pad_id = list(examples), pad_id
        self.pack, self.context_length = pack, context_length

    def __len__(self) -> int:
        return len(self.examples)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, rows: slice | None = None
    ) -> Batch:
        picked = torch.randint(0, len(self.examples), (batch_size,), generator=generator)
        if rows is not None:
            picked = picked[rows]
        chosen = [self.examples[i] for i in picked.tolist()]
        if self.pack:
            return pack_examples(chosen, self.context_length, self.pad_id)
        return pad_batch(chosen, self.pad_id)


@torch.no_grad()
def reply(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    messages: list[tuple[str, str]],
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int | None = None,
) -> str:
    """The model's answer to a conversation ((role, text) pairs), up to its <|end|>: greedy, or
    sampled at `temperature`."""
    from llmcourse.finetune.chat import stream_reply

    return "".join(stream_reply(model, tokenizer, messages, max_new_tokens,
                                temperature=temperature, seed=seed))


def score_answers(answers: Sequence[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """{task family: (right, questions)} for (task, given answer, expected answer) triples: an
    answer is right when it equals the expected one once surrounding white space is stripped
    (a model that says " 12\n" for 12 is right; "12." is not).

    >>> score_answers([("add", " 12", "12"), ("add", "12.", "12"), ("act", "3", "3")])
    {'add': (1, 2), 'act': (1, 1)}
    """
    scores: dict[str, tuple[int, int]] = {}
    for task, given, expected in answers:
        right, total = scores.get(task, (0, 0))
        scores[task] = (right + (given.strip() == expected.strip()), total + 1)
    return scores


def replies(
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    conversations: Sequence[Conversation],
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """The model's reply to each conversation's prompt, up to its <|end|>, as `reply` gives it one
    at a time, but many prompts answered at once (`llmcourse.model.generate.generate_rows`):
    greedy, or sampled at `temperature` (batch k of prompts drawn with seed + k)."""
    prompts, budgets = [], []
    for c in conversations:
        prompt = prompt_ids([(m.role, m.content) for m in c.prompt_messages], tokenizer)
        room = model.cfg.context_length - len(prompt) + 1
        if room < 1:
            raise ValueError(f"a prompt has {len(prompt)} tokens; the context holds "
                             f"{model.cfg.context_length}")
        prompts.append(prompt)
        budgets.append(min(max_new_tokens, room))
    rows = generate_rows(model, prompts, budgets, stop_id=tokenizer.special_tokens[END],
                         temperature=temperature, seed=seed if temperature else None)
    return [tokenizer.decode(r) for r in rows]


def exact_match(model: torch.nn.Module, tokenizer: Tokenizer, conversations: Sequence[Conversation],
                **sampling: Any) -> dict[str, tuple[int, int]]:
    """{task family: (answers exactly right, questions)} for the model's greedy replies, or, with
    a temperature, for one sampled reply per question (`sampling` takes `replies`' options)."""
    given = replies(model, tokenizer, conversations, **sampling)
    return score_answers([(c.task, g, c.answer) for c, g in zip(conversations, given, strict=True)])


def majority_baseline(
    train: Sequence[Conversation], test: Sequence[Conversation]
) -> dict[str, tuple[int, int]]:
    """{task family: (right, questions)} for always giving the family's commonest training
    answer: what a model scores by guessing well without reading the question. A fine-tuned
    score is a gain only above it (it matters where answers repeat, as the acts of a play do)."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for c in train:
        counts.setdefault(c.task, Counter())[c.answer] += 1
    commonest = {task: count.most_common(1)[0][0] for task, count in counts.items()}
    return score_answers([(c.task, commonest.get(c.task, ""), c.answer) for c in test])
