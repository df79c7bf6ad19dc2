"""Cleaning, splits, deduplication and quality filtering, on real text and against independent references
(exact Jaccard, datasketch, the known Folio/modern pairing)."""
import random

import numpy as np
import pytest

from llmcourse.cleaning import normalize_text, split_documents
from llmcourse.corpus import Document, load_corpus
from llmcourse.dedup import (datasketch_candidates, datasketch_minhashes, estimated_jaccard, exact_duplicate_groups, folio_pairs,
                             jaccard, lsh_candidates, minhash_signature, precision_recall, shingles,
                             verify_candidates)
from llmcourse.quality import QualityClassifier, failed_rules, synthetic_low_quality


@pytest.fixture(scope="module")
def editions():
    return folio_pairs(load_corpus("shakespeare").documents, load_corpus("shakespeare-folio").documents)


def test_normalize_text_is_idempotent_and_composes_unicode():
    messy = "e\u0301t\u00e9\r\nx\x00y  \n\n\n\nz"
    clean = normalize_text(messy)
    assert clean == "\u00e9t\u00e9\nxy\n\nz" and normalize_text(clean) == clean


def test_document_split_is_disjoint_complete_and_stable():
    docs = [Document(f"doc{i}", "x") for i in range(200)]
    train, val = split_documents(docs, 0.1)
    assert {d.name for d in train} | {d.name for d in val} == {d.name for d in docs}
    assert not {d.name for d in train} & {d.name for d in val}
    assert 8 <= len(val) <= 35
    _, val_more = split_documents(docs + [Document("new", "y")], 0.1)  # adding a document moves no other
    assert {d.name for d in val} <= {d.name for d in val_more}


@pytest.mark.parametrize("docs, fraction, message", [
    ([Document("a", "x")], 0.1, "at least 2"), ([Document("a", "x")] * 2, 0.1, "unique"),
    ([Document("a", "x"), Document("b", "y")], 1.0, "val_fraction"),
])
def test_bad_split_requests_are_explained(docs, fraction, message):
    with pytest.raises(ValueError, match=message):
        split_documents(docs, fraction)


def test_exact_duplicates_ignore_line_endings_and_trailing_space():
    docs = [Document("a", "To be,\r\nor not"), Document("b", "To be,  \nor not\n"), Document("c", "To be")]
    assert exact_duplicate_groups(docs) == [["a", "b"]]


def test_minhash_estimates_jaccard_and_agrees_with_datasketch():
    from datasketch import MinHash

    rng = random.Random(0)
    universe = [f"w{i}" for i in range(3000)]
    for _ in range(5):
        a = set(rng.sample(universe, 800))
        b = set(rng.sample(sorted(a), 400)) | set(rng.sample(universe, 400))
        exact = jaccard(a, b)
        ours = estimated_jaccard(minhash_signature(a, 256), minhash_signature(b, 256))
        ma, mb = MinHash(num_perm=256), MinHash(num_perm=256)
        ma.update_batch([s.encode() for s in a])
        mb.update_batch([s.encode() for s in b])
        assert abs(ours - exact) < 0.08 and abs(ma.jaccard(mb) - exact) < 0.08


def test_identical_documents_always_collide_in_lsh():
    sig = minhash_signature(shingles("the same text " * 20), 64)
    assert ("x", "y") in lsh_candidates({"x": sig, "y": sig.copy(), "z": minhash_signature({"other"}, 64)}, 16)


def test_lsh_with_verification_finds_the_folio_pairs(editions):
    docs, truth = editions
    assert len(truth) == 35
    sigs = {d.name: minhash_signature(shingles(d.text), 128) for d in docs}
    candidates = lsh_candidates(sigs, bands=64)  # 2 rows per band: threshold near 0.125
    precision, recall = precision_recall(verify_candidates(candidates, sigs, 0.15), truth)
    assert recall >= 0.9 and precision >= 0.95


def test_datasketch_lsh_on_the_folio_pairs(editions):
    docs, truth = editions
    sketches = datasketch_minhashes(docs, num_perm=128)
    precision, recall = precision_recall(datasketch_candidates(sketches, threshold=0.2), truth)
    assert recall >= 0.75 and precision >= 0.75
    assert precision_recall(datasketch_candidates(sketches, threshold=0.5), truth)[1] < 0.2  # above every true pair


def test_gopher_rules_keep_prose_and_catch_junk():
    prose = load_corpus("shakespeare").documents[5].text[10_000:14_000]
    assert failed_rules(prose) == []
    junk = synthetic_low_quality(5)
    assert all(failed_rules(doc) for doc in junk[:4])


def test_learned_classifier_generalises_to_held_out_documents():
    text = load_corpus("shakespeare").text
    passages = [text[i:i + 1500] for i in range(0, 1_500_000, 15_000)]
    junk = synthetic_low_quality(100, seed=1)
    model = QualityClassifier().fit(passages[:70], junk[:70])
    good, bad = model.score(passages[70:]), model.score(synthetic_low_quality(30, seed=2))
    accuracy = ((good > 0.5).float().mean() + (bad < 0.5).float().mean()) / 2
    assert accuracy >= 0.9
    with pytest.raises(ValueError, match="both"):
        QualityClassifier().fit(passages, [])
