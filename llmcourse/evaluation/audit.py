"""The contamination audit: every training source against every evaluation set, in one table.

An evaluation item that a training stage saw measures memory, not skill. Three checks find it,
each with a tool of the course, on texts normalised for case and white space:

- **exact**: the item equals a training text (`contamination.overlap`'s hashes);
- **near**: the item is a near-duplicate of a training text, its word 3-shingles' estimated
  Jaccard similarity at least 0.5 (MinHash and LSH, chapter 2's `dedup`);
- **shared run**: the item shares a run of words with any training text, as GPT-3's
  decontamination did: 13 words, or 8 for an item shorter than 13 words (an item shorter than 8
  is left to the first two checks).

    >>> train = {"sft": ["Who speaks this line? Now is the winter of our discontent made "
    ...                  "glorious summer by this sun of York. Richard"]}
    >>> held_out = {"text": ["Now is the winter of our discontent made glorious summer by this "
    ...                      "sun of York, and all the clouds", "So wise so young, they say"],
    ...             "questions": ["Who speaks this line? Now is the winter of our discontent "
    ...                           "made glorious summer by this sun of York. Richard"]}
    >>> print(audit_table(audit(train, held_out)))
    training source  evaluation set    items overlap  example
    sft              text                  2       1  item 0 is a near-duplicate (Jaccard 0.53)
    sft              questions             1       1  item 0 equals a training text
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.data.dedup import WORD, shingles
from llmcourse.evaluation.contamination import TrainingIndex

LONG_RUN = 13  # GPT-3's n-gram
SHORT_RUN = 8  # for items of fewer than LONG_RUN words


@dataclass(frozen=True)
class AuditRow:
    source: str  # a training source
    target: str  # an evaluation set
    checked: int  # its items
    overlapping: list[int]  # the items that any check flagged
    example: str | None  # what was found for the first of them

    @property
    def clean(self) -> bool:
        return not self.overlapping


def run_length(item: str) -> int | None:
    """The length of the word runs an item is checked for (None: too short for any)."""
    words = len(WORD.findall(item.lower()))
    return LONG_RUN if words >= LONG_RUN else SHORT_RUN if words >= SHORT_RUN else None


class RunIndex:
    """Every run of n words in a training source, for the lengths asked for, as hashes."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts, self.runs = texts, {}

    def shared(self, item: str) -> str | None:
        """The first run of the item's length that the source holds."""
        n = run_length(item)
        if n is None:
            return None
        if n not in self.runs:
            self.runs[n] = {hash(run) for text in self.texts for run in shingles(text, n)}
        found = self.runs[n]
        words = WORD.findall(item.lower())
        for i in range(len(words) - n + 1):
            run = " ".join(words[i:i + n])
            if hash(run) in found:
                return run
        return None


def audit(sources: dict[str, Sequence[str]], evaluations: dict[str, Sequence[str]],
          threshold: float = 0.5) -> list[AuditRow]:
    """One row per (training source, evaluation set): the items checked, those that overlap the
    source by any of the three checks, and an example."""
    rows = []
    for source, texts in sources.items():
        index, near = RunIndex(texts), TrainingIndex(texts)
        for target, items in evaluations.items():
            found = near.overlap(items, threshold)
            flagged = {i: ("equals a training text" if i in found.exact else
                           f"is a near-duplicate (Jaccard {found.similarity[i]:.2f})")
                       for i in found.flagged}
            for i, item in enumerate(items):
                run = None if i in flagged else index.shared(item)
                if run is not None:
                    flagged[i] = f"shares {len(run.split())} words: {run!r}"
            first = min(flagged, default=None)
            example = None if first is None else f"item {first} {flagged[first]}"
            rows.append(AuditRow(source, target, len(items), sorted(flagged), example))
    return rows


def audit_table(rows: Sequence[AuditRow], width: int = 60) -> str:
    """The audit as a plain-text table, an example cut to `width` characters."""
    lines = [f"{'training source':<16} {'evaluation set':<16} {'items':>6} {'overlap':>7}  example"]
    for row in rows:
        example = row.example or "-"
        example = example if len(example) <= width else example[:width - 3] + "..."
        lines.append(f"{row.source:<16} {row.target:<16} {row.checked:>6} "
                     f"{len(row.overlapping):>7}  {example}")
    return "\n".join(lines)


def conversation_text(conversation) -> str:
    """What a task conversation teaches or asks: its inputs and answers, the instruction frames
    left out (they are shared by design, and would flag every item)."""
    from llmcourse.finetune.tasks import task_input

    return "\n".join(task_input(m.content) if m.role == "user" else m.content
                     for m in conversation.messages)


def pair_text(pair) -> str:
    """A preference pair's prompt inputs and its chosen answer."""
    from llmcourse.finetune.records import Conversation, Message

    return conversation_text(Conversation((*pair.prompt, Message("assistant", pair.chosen))))


def paragraphs(text: str) -> list[str]:
    """A play's speeches and stage directions: the units its training text is compared in."""
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def course_sources(corpus_name: str = "shakespeare", dpo_prompts: Sequence = ()) -> dict:
    """The course's training sources: the pretraining text of the train split, the SFT
    conversations, and the prompts DPO trains on (with their sampled answers, the SFT model's,
    left out: they are the model's own words)."""
    from llmcourse.data.cleaning import clean_split
    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune.recipe import sft_tasks

    corpus = load_corpus(corpus_name)
    train, _ = clean_split(corpus)
    sources = {"pretraining": [p for doc in train for p in paragraphs(doc.text)],
               "SFT": [conversation_text(c) for c in sft_tasks(corpus).train]}
    if dpo_prompts:
        sources["DPO"] = [conversation_text(c) for c in dpo_prompts]
    return sources


def course_evaluations(suite) -> dict[str, list[str]]:
    """The report card's evaluation sets as texts: the held-out text pieces, each multiple-choice
    item's context and right answer, the questions and their answers, the preference pairs."""
    def chosen(item) -> str:
        return f"{item.context} {item.choices[item.gold]}"

    sets = {"held-out text": list(suite.texts), "word order": [chosen(i) for i in suite.order],
            "cloze": [chosen(i) for i in suite.cloze],
            "questions": [conversation_text(q) for q in suite.questions]}
    if suite.pairs:
        sets["pairs"] = [pair_text(p) for p in suite.pairs]
    return sets

