"""Multiple choice by log-likelihood, as the evaluation harness runs HellaSwag, ARC and MMLU: each
choice is scored as a continuation of the item's context, and the most likely one is the answer.

**Summed or normalised.** A sum of log-probabilities favours short choices: every token costs
probability. `acc` takes the largest sum; `acc_norm` divides each sum by the choice's length in
characters first (lm-eval's definition), which can change the pick.

>>> choose([-4.0, -6.0])  # the larger log-probability
0
>>> choose([-4.0, -6.0], lengths=[2, 6])  # per character: -2.0 against -1.0
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from llmcourse.evaluation.likelihood import Request, continuation_logprobs, encode_pair
from llmcourse.tokenizer import Tokenizer


@dataclass(frozen=True)
class MultipleChoice:
    context: str
    choices: tuple[str, ...]
    gold: int  # the index of the right choice

    def __post_init__(self) -> None:
        if len(self.choices) < 2:
            raise ValueError(f"a multiple-choice item needs two or more choices, got "
                             f"{len(self.choices)}")
        if len(set(self.choices)) != len(self.choices) or not all(self.choices):
            raise ValueError(f"the choices must be distinct and non-empty, got {self.choices}")
        if not 0 <= self.gold < len(self.choices):
            raise ValueError(f"gold must index a choice (0 to {len(self.choices) - 1}), got "
                             f"{self.gold}")


def choose(logprobs: Sequence[float], lengths: Sequence[float] | None = None) -> int:
    """The index of the best choice: the largest log-probability, or the largest per unit of
    length when `lengths` are given (the first on a tie, as numpy's argmax)."""
    if not logprobs:
        raise ValueError("no choices to choose from")
    if lengths is None:
        scores = list(logprobs)
    else:
        scores = [lp / n for lp, n in zip(logprobs, lengths, strict=True)]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def choice_requests(tokenizer: Tokenizer, item: MultipleChoice, prefix_id: int,
                    delimiter: str = " ") -> list[Request]:
    """One request per choice: the context, then the delimiter and the choice."""
    return [encode_pair(tokenizer, item.context, delimiter + choice, prefix_id)
            for choice in item.choices]


@dataclass(frozen=True)
class ChoiceResults:
    logprobs: tuple[tuple[float, ...], ...]  # per item, per choice
    picks: tuple[int, ...]  # by summed log-probability
    picks_norm: tuple[int, ...]  # by log-probability per character
    golds: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.golds)

    @property
    def right(self) -> int:
        return sum(p == g for p, g in zip(self.picks, self.golds, strict=True))

    @property
    def right_norm(self) -> int:
        return sum(p == g for p, g in zip(self.picks_norm, self.golds, strict=True))


def multiple_choice(model: nn.Module, tokenizer: Tokenizer, items: Sequence[MultipleChoice],
                    prefix_id: int, delimiter: str = " ", batch_size: int = 32) -> ChoiceResults:
    """Every item's choices scored in batches; picks by sum and by length-normalised sum."""
    requests = [r for item in items for r in choice_requests(tokenizer, item, prefix_id,
                                                              delimiter)]
    values = iter(v for v, _ in continuation_logprobs(model, requests, batch_size))
    logprobs = tuple(tuple(next(values) for _ in item.choices) for item in items)
    return ChoiceResults(
        logprobs,
        tuple(choose(lps) for lps in logprobs),
        tuple(choose(lps, [len(c) for c in item.choices])
              for lps, item in zip(logprobs, items, strict=True)),
        tuple(item.gold for item in items))
