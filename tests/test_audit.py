"""The contamination audit on real plays: a planted leak is found and named, nothing else moves,
and the shared-run check agrees with a brute-force search of the training words."""
import re

import pytest

from llmcourse.data.cleaning import clean_split
from llmcourse.data.corpus import load_corpus
from llmcourse.evaluation.audit import LONG_RUN, SHORT_RUN, RunIndex, audit, audit_table
from llmcourse.evaluation.audit import paragraphs as audit_units


def paragraphs(text: str, min_words: int = 8) -> list[str]:
    return [p for p in audit_units(text) if len(p.split()) >= min_words]


@pytest.fixture(scope="module")
def plays():
    train, held_out = clean_split(load_corpus("shakespeare"))
    training = [p for doc in train[:3] for p in paragraphs(doc.text)]
    evaluation = paragraphs(held_out[0].text)[:80]
    # conversations in the SFT tasks' shape: a frame, a line of a training play, the answer
    sft = [f"Who speaks this line?\n\n{p.splitlines()[0]}\nSPEAKER" for p in training[:300]]
    return {"pretraining": training, "sft": sft}, {"held-out text": evaluation}


def test_a_planted_leak_is_found_and_named(plays):
    sources, evaluations = plays
    before = {(r.source, r.target): r for r in audit(sources, evaluations)}
    leaked = 17
    line = evaluations["held-out text"][leaked]
    planted = {**sources, "sft": [*sources["sft"], f"Who speaks this line?\n\n{line}\nHAMLET"]}
    after = {(r.source, r.target): r for r in audit(planted, evaluations)}
    row = after[("sft", "held-out text")]
    assert row.overlapping == sorted({*before[("sft", "held-out text")].overlapping, leaked})
    assert row.checked == len(evaluations["held-out text"])
    if before[("sft", "held-out text")].clean:
        assert row.example.startswith(f"item {leaked} ")
    assert after[("pretraining", "held-out text")] == before[("pretraining", "held-out text")]
    table = audit_table(after.values())
    assert re.search(rf"^sft +held-out text +{row.checked} +{len(row.overlapping)} ", table,
                     re.MULTILINE)


def test_a_reworded_copy_is_found_too(plays):
    """One word changed in a planted copy: no longer exact, still a near-duplicate or a run."""
    sources, evaluations = plays
    item = evaluations["held-out text"][5]
    words = item.split()
    words[len(words) // 2] = "zounds"
    planted = {"sft": [" ".join(words)]}
    row = audit(planted, {"held-out text": [item]})[0]
    assert row.overlapping == [0]
    assert "equals" not in row.example


def naive_shared(item: str, training_words: str, n: int) -> bool:
    words = re.findall(r"\w+", item.lower())
    runs = (" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return any(f" {run} " in training_words for run in runs)


def test_shared_runs_agree_with_a_brute_force_search(plays):
    sources, evaluations = plays
    texts = sources["pretraining"]
    index = RunIndex(texts)
    # each training text's words, spaced, so that a run never spans two texts
    training_words = " " + " | ".join(" ".join(re.findall(r"\w+", t.lower())) for t in texts) + " "
    for item in evaluations["held-out text"]:
        n = LONG_RUN if len(re.findall(r"\w+", item)) >= LONG_RUN else SHORT_RUN
        expected = naive_shared(item, training_words, n)
        assert (index.shared(item) is not None) == expected, item
    # and a run copied into an item is found
    long_text = next(t for t in texts[40:] if len(t.split()) > 2 * LONG_RUN)
    copied = " ".join(long_text.split()[LONG_RUN:2 * LONG_RUN])
    assert index.shared(f"Thus spake the player: {copied}") is not None
