"""The generated tasks: answers that check exactly, and test questions that training never saw."""
import pytest

from llmcourse.data.plays import Speech, speeches
from llmcourse.finetune.tasks import (
    FAMILIES,
    FRAMES,
    HELD_OUT,
    make_play_tasks,
    make_tasks,
    vocabulary,
)

WORDS = vocabulary("the king is dead long live the queen and all her court; to be or not to be, "
                   "that is the question whether tis nobler in the mind to suffer", max_words=40)
PLAY = ("PERSONS.\n\nKING.\nQUEEN.\n\nACT I.\n\nSCENE 1. A room.\n\n"
        "KING.\nWhat news, my lord, from all the court?\n\n"
        "QUEEN.\nThe court is quiet, and the king is loved.\n\n"
        "ACT II.\n\nKING.\nThen let us ride to London in the morning.\n")


def test_every_family_answers_its_question_exactly():
    data = make_tasks(WORDS, n_per_family=30, test_per_family=5, seed=1)
    for c in data.train + data.test:
        question = c.messages[0].content.split("\n\n")[1]
        words = question.split()
        expected = {"first_word": words[0], "last_word": words[-1], "count_words": str(len(words)),
                    "reverse": " ".join(reversed(words)), "sort": " ".join(sorted(words)),
                    "capitals": question.upper(), "spell": "-".join(question),
                    "count_letters": str(len(question))}
        if c.task == "add":
            expected["add"] = str(int(words[0]) + int(words[2]))
        assert c.answer == expected[c.task], c
    assert {c.task for c in data.test} == set(FAMILIES)


def test_held_out_means_unseen():
    data = make_tasks(WORDS, n_per_family=60, test_per_family=10, seed=2)
    opening = lambda c: c.messages[0].content.split("\n\n")[0]  # noqa: E731
    held = {frame.split(" {}")[0] for frame in FRAMES[-HELD_OUT:]}
    assert all(any(opening(c).startswith(h) for h in held) for c in data.test)
    assert not any(any(opening(c).startswith(h) for h in held) for c in data.train)
    inputs = lambda cs: {(c.task, c.messages[0].content.split("\n\n")[1]) for c in cs}  # noqa: E731
    assert not inputs(data.test) & inputs(data.train)


def test_play_tasks_come_from_the_plays_and_hold_plays_out():
    first_lines = [(s.speaker, s.act, s.lines[0]) for s in speeches(PLAY)]
    assert first_lines == [("King", "", "QUEEN."),  # the list of persons, before any act
                           ("King", "I", "What news, my lord, from all the court?"),
                           ("Queen", "I", "The court is quiet, and the king is loved."),
                           ("King", "II", "Then let us ride to London in the morning.")]
    other = PLAY.replace("London", "Windsor").replace("news", "word")
    data = make_play_tasks({"a_play": PLAY, "b_play": other}, n_per_family=3, test_per_family=3)
    test_lines = {c.messages[0].content.split("\n\n")[1] for c in data.test}
    train_lines = {c.messages[0].content.split("\n\n")[1] for c in data.train}
    assert test_lines <= {s.lines[0] for s in speeches(other)}  # b_play is held out
    assert train_lines <= {s.lines[0] for s in speeches(PLAY)}
    with pytest.raises(ValueError, match="at least two plays"):
        make_play_tasks({"a_play": PLAY})


def test_speeches_read_every_layout_of_the_plays():
    # layouts found in the corpus: names in capitals or title case, abbreviated names, acts in
    # Roman or Arabic numerals, an act heading that also opens a scene, and one-word lines
    play = ("ACT 2\n\nHam.\nNo.\nIt is not so.\n\n[Exit.]\n\nThe rest is lost.\n\n"
            "ACT III. SCENE I. A hall.\n\nFIRST LORD.\nWhat got he by that?\n[Aside.]\nnot this\n")
    assert speeches(play) == [Speech("Ham", "II", ("No.", "It is not so.")),
                              Speech("First Lord", "III", ("What got he by that?",))]
