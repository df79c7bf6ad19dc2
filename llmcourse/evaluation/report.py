"""The report card: every stage of a model on every measure, with sample sizes and 95 % intervals,
above two floors, a random guess and chapter 1's bigram model. One function builds it for the
chapter and for `llmcourse eval`.

A number without its floor says little: 30 % on four choices is a little better than guessing,
30 % on a thousand would be remarkable. And a number without its interval invites reading noise:
two models 3 points apart on 200 items are not distinguishable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch
from torch import nn

from llmcourse.evaluation.choice import multiple_choice
from llmcourse.evaluation.likelihood import bits_per_byte
from llmcourse.evaluation.questions import PLAIN_TEXT, Prompting, exact_match, preference_accuracy
from llmcourse.evaluation.stats import wilson_interval
from llmcourse.evaluation.suite import CLOZE_DELIMITER, ORDER_DELIMITER, Suite
from llmcourse.tokenizer import END_OF_TEXT, Tokenizer

# measure -> (label, whether higher is better); SHORT: the report card's column headings
MEASURES = {
    "bits_per_byte": ("held-out bits per byte (lower is better)", False),
    "order": ("word order", True),
    "cloze": ("cloze", True),
    "cloze_norm": ("cloze, length-normalised", True),
    "exact_match": ("exact match", True),
    "preference": ("preference accuracy", True),
}
SHORT = {"bits_per_byte": "bits per byte (lower: better)", "order": "word order, %",
         "cloze": "cloze, %", "cloze_norm": "cloze normalised, %", "exact_match": "exact match, %",
         "preference": "preference, %"}


@dataclass(frozen=True)
class Score:
    value: float
    low: float  # a 95 % interval; equal to value for a floor that is exact
    high: float
    n: int  # items (for bits per byte: text pieces)
    bits: bool = False  # bits per byte, not a proportion

    @classmethod
    def proportion(cls, right: int, n: int) -> Score:
        low, high = wilson_interval(right, n)
        return cls(right / n, low, high, n)

    def _show(self, form: str) -> str:
        if self.low == self.high:  # an exact floor
            return form.format(self.value)
        return f"{form.format(self.value)} [{form.format(self.low)}, {form.format(self.high)}]"

    def cell(self) -> str:
        """Compact, for a table whose heading gives the unit: "95.0 [91.0, 97.3]"."""
        if self.bits:
            return self._show("{:.3f}")
        return Score(self.value * 100, self.low * 100, self.high * 100, self.n)._show("{:.1f}")

    def __str__(self) -> str:
        return self._show("{:.3f}" if self.bits else "{:.1%}")


@dataclass(frozen=True)
class Stage:
    """A model to put on the report card, and how to ask it questions."""
    name: str
    model: nn.Module
    tokenizer: Tokenizer
    prompting: Prompting = PLAIN_TEXT

    @property
    def prefix_id(self) -> int:
        return self.tokenizer.special_tokens[END_OF_TEXT]


class BigramLM(nn.Module):
    """Chapter 1's count-based bigram model as a language model the evaluation can read: its
    logits at each position are the log-probabilities of the next token given that token alone."""

    def __init__(self, probs: torch.Tensor, context_length: int) -> None:
        super().__init__()
        # a frozen parameter, not a buffer: it moves with .to() and tells where the model lives
        self.logp = nn.Parameter(probs.log().float(), requires_grad=False)  # (V, V)
        self.cfg = SimpleNamespace(context_length=context_length, vocab_size=probs.shape[0])

    def forward(self, ids: torch.Tensor, last_only: bool = False, **_) -> torch.Tensor:
        logits = self.logp[ids]  # (B, T, V)
        return logits[:, -1:] if last_only else logits


def measure(stage: Stage, suite: Suite) -> dict[str, Score]:
    """Every measure of one stage on the suite (exact match and preference only where the suite
    has questions and pairs)."""
    model, tok, prefix = stage.model, stage.tokenizer, stage.prefix_id
    bpb = bits_per_byte(model, tok, suite.texts, prefix)
    scores = {"bits_per_byte": Score(bpb.value, bpb.low, bpb.high, bpb.texts, bits=True)}
    if suite.order:  # the choices have the same length: normalising changes nothing
        picked = multiple_choice(model, tok, suite.order, prefix, ORDER_DELIMITER)
        scores["order"] = Score.proportion(picked.right, picked.n)
    if suite.cloze:
        picked = multiple_choice(model, tok, suite.cloze, prefix, CLOZE_DELIMITER)
        scores["cloze"] = Score.proportion(picked.right, picked.n)
        scores["cloze_norm"] = Score.proportion(picked.right_norm, picked.n)
    if suite.questions:
        right = exact_match(model, tok, suite.questions, stage.prompting)
        scores["exact_match"] = Score.proportion(sum(r for r, _ in right.values()),
                                                 sum(n for _, n in right.values()))
    if suite.pairs:
        ranked = preference_accuracy(model, tok, suite.pairs, stage.prompting, prefix)
        scores["preference"] = Score.proportion(sum(ranked), len(ranked))
    return scores


def random_guess(suite: Suite, tokenizer: Tokenizer) -> dict[str, Score]:
    """What guessing scores: a uniform choice among the vocabulary (bits per byte), the choices or
    the pair; for exact match, always giving the task family's commonest training answer."""
    from llmcourse.finetune.sft import majority_baseline

    tokens = sum(len(tokenizer.encode_ordinary(t)) for t in suite.texts)
    size = sum(len(t.encode("utf-8")) for t in suite.texts)
    bits = tokens * math.log2(tokenizer.n_vocab) / size
    out = {"bits_per_byte": Score(bits, bits, bits, len(suite.texts), bits=True)}
    for name, data in (("order", suite.order), ("cloze", suite.cloze), ("cloze_norm", suite.cloze)):
        if data:
            chance = sum(1 / len(item.choices) for item in data) / len(data)
            out[name] = Score(chance, chance, chance, len(data))
    if suite.questions and suite.train_questions:
        right = majority_baseline(suite.train_questions, suite.questions)
        out["exact_match"] = Score.proportion(sum(r for r, _ in right.values()),
                                              len(suite.questions))
    if suite.pairs:
        out["preference"] = Score(0.5, 0.5, 0.5, len(suite.pairs))
    return out


@dataclass
class Report:
    scores: dict[str, dict[str, Score]]  # row name -> measure -> score
    formats: dict[str, str] = field(default_factory=dict)  # row name -> prompt format

    def table(self) -> str:
        """The report card as a Markdown table: a row per model, a column per measure, each cell
        a value and its 95 % interval."""
        measures = [m for m in MEASURES if any(m in row for row in self.scores.values())]
        head = ["| | prompt | " + " | ".join(SHORT[m] for m in measures) + " |",
                "|---" * (len(measures) + 2) + "|",
                "| items | | " + " | ".join(str(self._n(m)) for m in measures) + " |"]
        rows = [f"| {name} | {self.formats.get(name, '')} | "
                + " | ".join(row[m].cell() if m in row else "" for m in measures) + " |"
                for name, row in self.scores.items()]
        return "\n".join(head + rows)

    def rows(self) -> dict[str, dict[str, tuple[float, float, float, int]]]:
        """model -> measure -> (value, low, high, n): what `viz.evaluation.report_figure` draws."""
        return {name: {m: (s.value, s.low, s.high, s.n) for m, s in row.items()}
                for name, row in self.scores.items()}

    def _n(self, measure: str) -> int:
        return max(row[measure].n for row in self.scores.values() if measure in row)


def report_card(stages: Sequence[Stage], suite: Suite, floors: Sequence[Stage] = (),
                guess: bool = True) -> Report:
    """The report card of `stages` on `suite`, below the random guess (if `guess`) and the
    `floors` (the bigram model: `bigram_stage`)."""
    if not stages:
        raise ValueError("give at least one stage to evaluate")
    report = Report({})
    if guess:
        report.scores["random guess"] = random_guess(suite, stages[0].tokenizer)
    for stage in (*floors, *stages):
        report.scores[stage.name] = measure(stage, suite)
        report.formats[stage.name] = stage.prompting.name
    return report


def bigram_stage(tokenizer: Tokenizer, context_length: int, name: str = "bigram (chapter 1)",
                 corpus: str = "shakespeare") -> Stage:
    """Chapter 1's bigram model, counted on the course model's training plays in its tokens."""
    from llmcourse.data.cleaning import clean_split
    from llmcourse.data.corpus import load_corpus
    from llmcourse.foundations.bigram import BigramModel

    if tokenizer.n_vocab > 16_384:
        raise ValueError(f"a bigram table over {tokenizer.n_vocab:,} tokens would take "
                         f"{tokenizer.n_vocab ** 2 * 8 / 2**30:.0f} GiB: the bigram floor is for "
                         f"small vocabularies such as the course model's")
    train, _ = clean_split(load_corpus(corpus))
    eot = tokenizer.special_tokens[END_OF_TEXT]
    ids = [i for doc in train for i in (eot, *tokenizer.encode_ordinary(doc.text))]
    bigram = BigramModel.fit(torch.tensor(ids), tokenizer.n_vocab)
    return Stage(name, BigramLM(bigram.probs, context_length), tokenizer, PLAIN_TEXT)


def course_stages(progress: bool = False) -> tuple[list[Stage], list]:
    """The course model after pretraining, after SFT and after DPO (each from its cache, or
    trained by its recipe), and the held-out preference pairs made for DPO."""
    from llmcourse.dpo.recipe import dpo_model
    from llmcourse.evaluation.questions import CHAT
    from llmcourse.finetune.recipe import sft_model
    from llmcourse.training.course_model import course_model

    course = course_model(progress=progress)
    sft, dpo = sft_model(progress=progress), dpo_model(progress=progress)
    return [Stage("pretrained", course.model, course.tokenizer),
            Stage("SFT", sft.model, sft.tokenizer, CHAT),
            Stage("DPO", dpo.model, dpo.tokenizer, CHAT)], dpo.test_pairs
