"""Instruction tasks the course makes itself, each with an answer that can be checked exactly.

No instruction data set can be downloaded offline, and a falling loss says little about whether a
model follows instructions. So the course generates its own: procedural tasks (the first or last
word, counting, adding, reversing, sorting, capitals, spelling) and tasks from the plays (who
speaks a line, in which act).

**An instruction** is a frame ("Tell me {}.", "What is {}?") around the task's subject ("the last
word"), then a blank line and the task's input. Twelve frames are shared by every task.

**Held out means unseen.** The last two frames are kept for testing and never trained on; no test
question's input appears in training; and the play tasks are tested on plays held out from
training. A test question is new in its wording and its input, and for the plays in its source.

>>> words = "the king is dead long live the queen and all her court".split()
>>> data = make_tasks(words, n_per_family=2, test_per_family=1, families=["last_word"], seed=0)
>>> data.train[0].messages[0].content
'Find the last word.\\n\\nlong court'
>>> data.train[0].answer
'court'
>>> data.test[0].messages[0].content.split("\\n")[0]  # a held-out frame
'Reply with the last word.'
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmcourse.data.plays import speeches
from llmcourse.finetune.records import Conversation, Message

FRAMES = ("Give {}.", "What is {}?", "Tell me {}.", "Write {}.", "Find {}.", "Say {}.",
          "Please give {}.", "I want {}.", "Now write {}.", "Answer with {}.",
          "Show {}.", "Reply with {}.")
HELD_OUT = 2  # the last frames: for testing only

Make = Callable[[random.Random, Sequence[str]], tuple[str, str]]  # (input, answer)


def _some(rng: random.Random, words: Sequence[str], low: int, high: int) -> list[str]:
    return [rng.choice(words) for _ in range(rng.randint(low, high))]


def _first(rng, words):
    w = _some(rng, words, 2, 4)
    return " ".join(w), w[0]


def _last(rng, words):
    w = _some(rng, words, 2, 4)
    return " ".join(w), w[-1]


def _count_words(rng, words):
    w = _some(rng, words, 1, 6)
    return " ".join(w), str(len(w))


def _add(rng, words):
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"{a} + {b}", str(a + b)


def _reverse(rng, words):
    w = _some(rng, words, 3, 3)
    return " ".join(w), " ".join(reversed(w))


def _sort(rng, words):
    w = _some(rng, words, 3, 3)
    return " ".join(w), " ".join(sorted(w))


def _capitals(rng, words):
    w = _some(rng, words, 2, 2)
    return " ".join(w), " ".join(w).upper()


def _spell(rng, words):
    w = rng.choice([x for x in words if 3 <= len(x) <= 6])
    return w, "-".join(w)


def _count_letters(rng, words):
    w = rng.choice([x for x in words if len(x) <= 9])
    return w, str(len(w))


@dataclass(frozen=True)
class Family:
    name: str
    subject: str  # what the frame asks for
    make: Make


FAMILIES = {f.name: f for f in (
    Family("first_word", "the first word", _first),
    Family("last_word", "the last word", _last),
    Family("count_words", "the number of words", _count_words),
    Family("add", "the sum", _add),
    Family("reverse", "the words in reverse order", _reverse),
    Family("sort", "the words in alphabetical order", _sort),
    Family("capitals", "the words in capital letters", _capitals),
    Family("spell", "the word spelt with hyphens", _spell),
    Family("count_letters", "the number of letters", _count_letters),
)}


@dataclass(frozen=True)
class TaskSplit:
    train: list[Conversation]
    test: list[Conversation]


def instruction(frame: str, subject: str, task_input: str) -> str:
    text = frame.format(subject)
    return f"{text[0].upper()}{text[1:]}\n\n{task_input}"


def task_input(message: str) -> str:
    """An instruction's input without its frame (the whole message where it has none).

    >>> task_input(instruction("Give {}.", "the first word", "ox ant"))
    'ox ant'
    """
    return message.split("\n\n", 1)[-1]


def _draw(family: str, subject: str, make: Callable[[random.Random], tuple[str, str]],
          rng: random.Random, count: int, frames: Sequence[str], avoid: set,
          out: list[Conversation]) -> None:
    """`count` new questions (inputs not in `avoid`), as far as the family has that many."""
    for _ in range(50 * count):
        if count == 0:
            return
        task_input, answer = make(rng)
        if (family, task_input) in avoid:
            continue
        avoid.add((family, task_input))
        out.append(Conversation((Message("user", instruction(rng.choice(frames), subject,
                                                             task_input)),
                                 Message("assistant", answer)), family))
        count -= 1


def make_tasks(words: Sequence[str], n_per_family: int = 400, test_per_family: int = 40,
               families: Sequence[str] | None = None, seed: int = 0) -> TaskSplit:
    """Procedural tasks over `words`: up to n_per_family training and test_per_family test
    questions per family, the test ones with held-out frames and inputs never trained on."""
    names = list(FAMILIES) if families is None else list(families)
    unknown = sorted(set(names) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown task families {unknown}; known: {sorted(FAMILIES)}")
    words = sorted(set(words))
    if len(words) < 10:
        raise ValueError(f"need at least 10 distinct words, got {len(words)}")
    rng = random.Random(seed)
    train, test = [], []
    for name in names:
        family, seen = FAMILIES[name], set()
        make = lambda r, f=family: f.make(r, words)  # noqa: E731
        # test questions first, so that training never holds one of their inputs
        _draw(name, family.subject, make, rng, test_per_family, FRAMES[-HELD_OUT:], seen, test)
        _draw(name, family.subject, make, rng, n_per_family, FRAMES[:-HELD_OUT], seen, train)
    rng.shuffle(train)
    return TaskSplit(train, test)


def vocabulary(text: str, min_length: int = 2, max_words: int = 400) -> list[str]:
    """The most frequent lower-case words of a text: the words the tasks are made of."""
    counts: dict[str, int] = {}
    for word in re.findall(r"[a-z]+", text.lower()):
        if len(word) >= min_length:
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))[:max_words]


PLAY_FAMILIES = {"speaker": "the speaker of this line", "act": "the act of this line"}


def make_play_tasks(plays: dict[str, str], n_per_family: int = 400, test_per_family: int = 40,
                    seed: int = 0) -> TaskSplit:
    """Who speaks a line, and in which act (a Roman numeral): training questions from most plays,
    test questions from the last fifth of them in name order (at least one), with held-out
    frames."""
    names = sorted(plays)
    if len(names) < 2:
        raise ValueError("need at least two plays: some to train on, one to hold out")
    held = max(1, len(names) // 5)
    pools = [[(s.speaker, s.act, s.lines[0]) for name in part for s in speeches(plays[name])
              if s.act and 20 <= len(s.lines[0]) <= 60]
             for part in (names[:-held], names[-held:])]
    if not all(pools):
        raise ValueError("found no speeches in an act (a speaker's name on its own line, ending "
                         "in a full stop, then a line of 20 to 60 characters)")
    rng = random.Random(seed)
    train, test = [], []
    for family, subject in PLAY_FAMILIES.items():
        for pool, count, frames, out in ((pools[1], test_per_family, FRAMES[-HELD_OUT:], test),
                                         (pools[0], n_per_family, FRAMES[:-HELD_OUT], train)):
            for speaker, act, line in rng.sample(pool, min(count, len(pool))):
                answer = speaker if family == "speaker" else act
                out.append(Conversation((Message("user", instruction(rng.choice(frames), subject,
                                                                     line)),
                                         Message("assistant", answer)), family))
    rng.shuffle(train)
    return TaskSplit(train, test)
