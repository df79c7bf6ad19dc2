"""Instruction tasks the course makes itself, each with an answer that can be checked exactly.

No instruction data set can be downloaded offline, and a falling loss says little about whether a
model follows instructions. So the course generates its own: procedural tasks (reverse or sort
words, count, add, capitalise, spell) and tasks from the plays (who speaks a line, in which act).

**Held out means unseen.** Every family has several phrasings of its instruction; the last one is
kept for testing and never trained on. Task inputs use words from a split of the vocabulary, and
the play tasks use plays of a split of the corpus, so a test question is new in its wording, its
words and its source.

>>> words = "the king is dead long live the queen and all her court".split()
>>> data = make_tasks(words, n_per_family=2, test_per_family=1, families=["reverse"], seed=0)
>>> data.train[0].messages[0].content
'Write these words backwards, last first.\\n\\nlive king dead'
>>> data.train[0].answer
'dead king live'
>>> data.test[0].messages[0].content.split("\\n")[0]  # the held-out phrasing
'Put the words in reverse order.'

"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Sequence

from llmcourse.finetune.records import Conversation, Message

Make = Callable[[random.Random, Sequence[str]], tuple[str, str]]  # (input, answer)


def _words(rng: random.Random, words: Sequence[str], low: int, high: int) -> list[str]:
    return rng.sample(list(words), rng.randint(low, high))


def _reverse(rng, words):
    w = _words(rng, words, 3, 3)
    return " ".join(w), " ".join(reversed(w))


def _sort(rng, words):
    w = _words(rng, words, 3, 3)
    return " ".join(w), " ".join(sorted(w))


def _count_words(rng, words):
    w = [rng.choice(list(words)) for _ in range(rng.randint(1, 6))]
    return " ".join(w), str(len(w))


def _count_letters(rng, words):
    w = rng.choice([x for x in words if len(x) <= 9])
    return w, str(len(w))


def _add(rng, words):
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"{a} + {b}", str(a + b)


def _capitals(rng, words):
    w = _words(rng, words, 2, 2)
    return " ".join(w), " ".join(w).upper()


def _spell(rng, words):
    w = rng.choice([x for x in words if 3 <= len(x) <= 6])
    return w, "-".join(w)


@dataclass(frozen=True)
class Family:
    name: str
    phrasings: tuple[str, ...]  # the last is held out for testing
    make: Make


FAMILIES = {
    f.name: f
    for f in (
        Family(
            "reverse",
            (
                "Reverse the order of the words.",
                "Write these words backwards, last first.",
                "Put the words in reverse order.",
            ),
            _reverse,
        ),
        Family(
            "sort",
            (
                "Sort the words alphabetically.",
                "Put the words in alphabetical order.",
                "Arrange these words from A to Z.",
            ),
            _sort,
        ),
        Family(
            "count_words",
            ("How many words are there?", "Count the words.", "Give the number of words."),
            _count_words,
        ),
        Family(
            "count_letters",
            (
                "How many letters does this word have?",
                "Count the letters.",
                "Give the length of the word in letters.",
            ),
            _count_letters,
        ),
        Family("add", ("Add the numbers.", "What is the sum?", "Work out the total."), _add),
        Family(
            "capitals",
            (
                "Write the words in capitals.",
                "Make every letter upper case.",
                "Rewrite this in capital letters.",
            ),
            _capitals,
        ),
        Family(
            "spell",
            (
                "Spell the word with hyphens.",
                "Spell it out, letter by letter.",
                "Write the word's letters joined by hyphens.",
            ),
            _spell,
        ),
    )
}


@dataclass(frozen=True)
class TaskSplit:
    train: list[Conversation]
    test: list[Conversation]


def _conversation(family: Family, phrasing: str, task_input: str, answer: str) -> Conversation:
    return Conversation(
        (Message("user", f"{phrasing}\n\n{task_input}"), Message("assistant", answer)), family.name
    )


def make_tasks(
    words: Sequence[str],
    n_per_family: int = 400,
    test_per_family: int = 40,
    families: Sequence[str] | None = None,
    seed: int = 0,
) -> TaskSplit:
    """Procedural tasks: n_per_family training and test_per_family test conversations per family.
    Training uses all phrasings but the last and the first 80 % of `words`; testing, the last
    phrasing and the other 20 % of the words."""
    names = list(FAMILIES) if families is None else list(families)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known: {sorted(FAMILIES)}")
    words = sorted(set(words))
    if len(words) < 10:
        raise ValueError(f"need at least 10 distinct words to split, got {len(words)}")
    rng = random.Random(seed)
    shuffled = rng.sample(words, len(words))
    cut = int(len(shuffled) * 0.8)
    train_words, test_words = shuffled[:cut], shuffled[cut:]
    train, test = [], []
    for name in names:
        family = FAMILIES[name]
        for _ in range(n_per_family):
            phrasing = rng.choice(family.phrasings[:-1])
            train.append(_conversation(family, phrasing, *family.make(rng, train_words)))
        for _ in range(test_per_family):
            test.append(_conversation(family, family.phrasings[-1], *family.make(rng, test_words)))
    rng.shuffle(train)
    return TaskSplit(train, test)


def vocabulary(text: str, min_length: int = 2, max_words: int = 400) -> list[str]:
    """The most frequent lower-case words of a text: the words the tasks are made of."""
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z]+", text.lower()):
        if len(word) >= min_length:
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))[:max_words]


_SPEAKER = re.compile(r"^([A-Z][A-Z' ]{1,30})\.$")
_ACT = re.compile(r"^ACT ([IVX]+)\.?$")


def speeches(play: str) -> list[tuple[str, str, str]]:
    """(speaker, act, first line of speech) for every speech of a play in the corpus's layout: a
    speaker's name in capitals on a line of its own, ending with a full stop."""
    out, act, speaker = [], "", None
    for line in play.splitlines():
        line = line.strip()
        if _ACT.match(line):
            act, speaker = _ACT.match(line).group(1), None
        elif _SPEAKER.match(line):
            speaker = _SPEAKER.match(line).group(1).title()
        elif line and speaker and act:
            if 20 <= len(line) <= 60 and not line.startswith(("[", "SCENE")):
                out.append((speaker, act, line))
            speaker = None
    return out


PLAY_FAMILIES = {
    "speaker": ("Who says this line?", "Name the speaker of this line.", "Which character speaks?"),
    "act": (
        "In which act is this line?",
        "Give the act of this line.",
        "Which act does it come from?",
    ),
}


def make_play_tasks(
    plays: dict[str, str], n_per_family: int = 400, test_per_family: int = 40, seed: int = 0
) -> TaskSplit:
    """Who speaks a line, and in which act (answered as a Roman numeral): training from the first
    plays in `plays`, testing from the last fifth of them (at least one), with the held-out
    phrasing."""
    names = sorted(plays)
    if len(names) < 2:
        raise ValueError("need at least two plays: some to train on, one to hold out")
    held = max(1, len(names) // 5)
    rng = random.Random(seed)
    pools = [
        [s for name in part for s in speeches(plays[name])]
        for part in (names[:-held], names[-held:])
    ]
    if not all(pools):
        raise ValueError(
            "found no speeches in the plays (a speaker's name in capitals, then a line)"
        )
    train, test = [], []
    for family, phrasings in PLAY_FAMILIES.items():
        for pool, count, choices, out in (
            (pools[0], n_per_family, phrasings[:-1], train),
            (pools[1], test_per_family, phrasings[-1:], test),
        ):
            for speaker, act, line in rng.sample(pool, min(count, len(pool))):
                answer = speaker if family == "speaker" else act
                out.append(
                    Conversation(
                        (
                            Message("user", f"{rng.choice(choices)}\n\n{line}"),
                            Message("assistant", answer),
                        ),
                        family,
                    )
                )
    rng.shuffle(train)
    return TaskSplit(train, test)
