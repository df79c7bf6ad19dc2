"""The course's own evaluation data, made from text the course model never trained on.

No benchmark can be downloaded offline, so the course builds small ones from the four plays that
pretraining held out (chapter 6's split), in the shapes the field uses:

- **held-out text** for bits per byte: the plays cut into pieces of about 2,000 characters;
- **word order** (multiple choice, as BLiMP's minimal pairs): which of four lines is the one
  written? The other three hold the same words shuffled;
- **cloze** (multiple choice, as HellaSwag): a line of a speech; which of four lines comes next?
  The other three are lines from elsewhere in the same play;
- **questions** (generative exact match, as GSM8K): the held-out questions of chapter 8's tasks;
- **preference pairs** (pairwise): chapter 9's held-out pairs, a right and a wrong answer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.data.plays import speeches
from llmcourse.evaluation.choice import MultipleChoice

PIECE_CHARS = 2000
# what joins an item's context to each choice: a line follows its speaker's name after a space;
# the next line follows on a line of its own
ORDER_DELIMITER, CLOZE_DELIMITER = " ", "\n"


def text_pieces(texts: Sequence[str], size: int = PIECE_CHARS) -> list[str]:
    """The texts cut at line ends into pieces of at least `size` characters (a shorter last piece
    joins the one before it)."""
    pieces: list[str] = []
    for text in texts:
        start = 0
        while start < len(text):
            end = text.find("\n", start + size)
            end = len(text) if end == -1 else end + 1
            if len(text) - end < size // 2:
                end = len(text)
            pieces.append(text[start:end])
            start = end
    return pieces


def word_order(plays: Sequence[str], n: int, choices: int = 4,
               seed: int = 0) -> list[MultipleChoice]:
    """`n` items as BLiMP's minimal pairs: which of these is the line as written? The others hold
    the same words in a shuffled order, so every choice has the same words and the same length,
    and only the order tells them apart. The context is the speaker.

    >>> item = word_order(["ROMEO.\\nBut soft, what light through yonder window breaks?\\n"], 1)[0]
    >>> item.context, item.choices[item.gold]
    ('Romeo:', 'But soft, what light through yonder window breaks?')
    """
    rng = random.Random(seed)
    lines = [(s.speaker, line) for play in plays for s in speeches(play) for line in s.lines
             if 30 <= len(line) <= 80 and len(set(line.split())) >= 5]
    items = []
    for speaker, line in rng.sample(lines, n):
        words, shuffled = line.split(), set()
        while len(shuffled) < choices - 1:
            order = rng.sample(words, len(words))
            if order != words:
                shuffled.add(" ".join(order))
        options = sorted(shuffled)
        gold = rng.randrange(choices)
        options.insert(gold, line)
        items.append(MultipleChoice(f"{speaker}:", tuple(options), gold))
    return items


def cloze(plays: Sequence[str], n: int, choices: int = 4, seed: int = 0) -> list[MultipleChoice]:
    """`n` items: a speaker and a line of verse; the right choice is the speech's next line, the
    others are lines from other speeches of the same play."""
    rng = random.Random(seed)
    pairs, lines_of = [], []
    for p, play in enumerate(plays):
        of_play = speeches(play)
        lines_of.append([line for s in of_play for line in s.lines])
        pairs += [(p, s.speaker, a, b) for s in of_play
                  for a, b in zip(s.lines, s.lines[1:], strict=False)
                  if len(a) >= 20 and len(b) >= 20]
    items = []
    for p, speaker, line, after in rng.sample(pairs, n):
        others: list[str] = []
        while len(others) < choices - 1:
            other = rng.choice(lines_of[p])
            if len(other) >= 20 and other not in (after, line, *others):
                others.append(other)
        gold = rng.randrange(choices)
        options = others[:gold] + [after] + others[gold:]
        items.append(MultipleChoice(f"{speaker}: {line}", tuple(options), gold))
    return items


@dataclass
class Suite:
    texts: list[str]  # held-out text, in pieces
    order: list[MultipleChoice]
    cloze: list[MultipleChoice]
    questions: list  # Conversations: held-out instruction questions
    pairs: list  # PreferencePairs: held-out preference pairs
    train_questions: list  # the instruction questions trained on (for the majority baseline)


def course_suite(pairs: Sequence | None = None, items: int = 200, seed: int = 0) -> Suite:
    """The course's evaluation data: `items` multiple-choice items per task, every held-out text
    piece and question, and the held-out preference pairs given (chapter 9's: dpo_model()
    returns them)."""
    from llmcourse.data.cleaning import clean_split
    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune.recipe import sft_tasks

    corpus = load_corpus("shakespeare")
    _, held_out = clean_split(corpus)
    plays = [d.text for d in held_out]
    tasks = sft_tasks(corpus)
    return Suite(text_pieces(plays), word_order(plays, items, seed=seed),
                 cloze(plays, items, seed=seed), list(tasks.test), list(pairs or []),
                 list(tasks.train))
