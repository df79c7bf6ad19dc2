"""Preference pairs made from the course's own tasks, whose answers can be checked exactly.

The chosen answer is the right one. The rejected answer is, where possible, the SFT model's own
mistake on the same prompt: a sampled answer that is wrong (*on-policy*, what DPO works best on,
since it pushes down what the model really says). Where the model samples only right answers, the
rejected answer is a plausible corruption instead: another answer of the same task family (a
wrong count, another word of the list, another act).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

from llmcourse.dpo.preferences import PreferencePair
from llmcourse.finetune.records import Conversation
from llmcourse.finetune.template import END, prompt_ids
from llmcourse.generate import stream
from llmcourse.tokenizer import Tokenizer


@dataclass(frozen=True)
class MadePairs:
    pairs: list[PreferencePair]
    on_policy: int  # rejected answers the model itself sampled
    corrupted: int  # rejected answers drawn from the family's other answers


@torch.no_grad()
def sample_answers(model: torch.nn.Module, tokenizer: Tokenizer, conversation: Conversation,
                   samples: int, temperature: float, seed: int,
                   max_new_tokens: int = 12) -> list[str]:
    """`samples` answers to the conversation's prompt, sampled together in one batch."""
    prompt = prompt_ids([(m.role, m.content) for m in conversation.prompt_messages], tokenizer)
    end = tokenizer.special_tokens[END]
    device = next(model.parameters()).device
    ids = torch.tensor([prompt] * samples, device=device)
    room = min(max_new_tokens, model.cfg.context_length - len(prompt) + 1)
    rows: list[list[int]] = [[] for _ in range(samples)]
    done = [False] * samples
    for token in stream(model, ids, room, temperature=temperature, seed=seed, eos_id=end):
        for i, t in enumerate(token.tolist()):
            done[i] = done[i] or t == end
            if not done[i]:
                rows[i].append(t)
    return [tokenizer.decode(r).strip() for r in rows]


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
    for i, c in enumerate(conversations):
        right = c.answer.strip()
        sampled = sample_answers(model, tokenizer, c, samples, temperature, seed + i)
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
