"""Preference pairs made from the course's own tasks, whose answers can be checked exactly.

The chosen answer is the right one. The rejected answer is, where possible, the SFT model's own
mistake on the same prompt: a sampled answer that is wrong (*on-policy*, what DPO works best on,
since it pushes down what the model really says). Where the model samples only right answers, the
rejected answer is a plausible corruption instead: another answer of the same task family (a
wrong count, another word of the list, another act).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from llmcourse.dpo.preferences import PreferencePair
from llmcourse.finetune.records import Conversation
from llmcourse.finetune.sft import replies
from llmcourse.tokenizer import Tokenizer


@dataclass(frozen=True)
class MadePairs:
    pairs: list[PreferencePair]
    on_policy: int  # rejected answers the model itself sampled
    corrupted: int  # rejected answers drawn from the family's other answers


def sample_answers(model: torch.nn.Module, tokenizer: Tokenizer,
                   conversations: Sequence[Conversation], samples: int, temperature: float,
                   seed: int, max_new_tokens: int = 12) -> list[list[str]]:
    """`samples` answers to each conversation's prompt, sampled in batches of many prompts."""
    repeated = [c for c in conversations for _ in range(samples)]
    texts = [t.strip() for t in replies(model, tokenizer, repeated, max_new_tokens, temperature,
                                        seed)]
    return [texts[i * samples:(i + 1) * samples] for i in range(len(conversations))]


def make_pairs(model: torch.nn.Module, tokenizer: Tokenizer,
               conversations: Sequence[Conversation], samples: int = 4, temperature: float = 1.0,
               seed: int = 0, per_prompt: int = 1) -> MadePairs:
    """Pairs of (the right answer, a wrong one the model sampled) for every conversation: up to
    `per_prompt` pairs with different wrong answers, else one pair with another answer of the
    family. More pairs per prompt make a held-out measurement less noisy."""
    rng = random.Random(seed)
    answers: dict[str, list[str]] = {}
    for c in conversations:
        answers.setdefault(c.task, []).append(c.answer)
    pairs, on_policy = [], 0
    sampled_all = sample_answers(model, tokenizer, conversations, samples, temperature, seed)
    for c, sampled in zip(conversations, sampled_all, strict=True):
        right = c.answer.strip()
        wrong = list(dict.fromkeys(a for a in sampled if a and a != right))[:per_prompt]
        for rejected in wrong:
            pairs.append(PreferencePair(c.prompt_messages, c.answer, rejected, c.task))
        on_policy += len(wrong)
        if not wrong:
            others = sorted({a for a in answers[c.task] if a.strip() != right})
            if not others:
                raise ValueError(f"the task {c.task!r} has a single answer ({right!r}): nothing to "
                                 f"reject")
            rejected = rng.choice(others)
            pairs.append(PreferencePair(c.prompt_messages, c.answer, rejected, c.task))
    return MadePairs(pairs, on_policy, len(pairs) - on_policy)
