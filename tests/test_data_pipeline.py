"""Cleaning, splits, deduplication and quality filtering, on real text and against independent
references (exact Jaccard, datasketch, the known Folio/modern pairing, Python's unbounded
integers)."""
import random

import numpy as np
import pytest

from llmcourse.data.cleaning import normalize_text, split_documents
from llmcourse.data.corpus import Document, load_corpus
from llmcourse.data.dedup import (
    PRIME,
    datasketch_candidates,
    datasketch_minhashes,
    estimated_jaccard,
    exact_duplicate_groups,
    folio_pairs,
    jaccard,
    lsh_candidates,
    min_hashes,
    minhash_signature,
    permutations,
    precision_recall,
    shingle_hash,
    shingles,
    verify_candidates,
)
from llmcourse.data.quality import (
    JUNK_KINDS,
    QualityClassifier,
    failed_rules,
    synthetic_low_quality,
)


@pytest.fixture(scope="module")
def editions():
    modern, folio = load_corpus("shakespeare"), load_corpus("shakespeare-folio")
    return folio_pairs(modern.documents, folio.documents)


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
    # adding a document moves no other
    _, val_more = split_documents(docs + [Document("new", "y")], 0.1)
    assert {d.name for d in val} <= {d.name for d in val_more}


@pytest.mark.parametrize("docs, fraction, message", [
    ([Document("a", "x")], 0.1, "at least 2"), ([Document("a", "x")] * 2, 0.1, "unique"),
    ([Document("a", "x"), Document("b", "y")], 1.0, "val_fraction"),
])
def test_bad_split_requests_are_explained(docs, fraction, message):
    with pytest.raises(ValueError, match=message):
        split_documents(docs, fraction)


def test_exact_duplicates_ignore_line_endings_and_trailing_space():
    docs = [Document("a", "To be,\r\nor not"), Document("b", "To be,  \nor not\n"),
            Document("c", "To be")]
    assert exact_duplicate_groups(docs) == [["a", "b"]]


# Public-domain verse: Li Bai and Meng Haoran (Chinese), Pushkin (Russian), Basho (Japanese).
POEMS = {
    "li-bai": "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "meng-haoran": "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "pushkin-winter": "Мороз и солнце; день чудесный! Ещё ты дремлешь, друг прелестный, пора, "
                      "красавица, проснись.",
    "pushkin-memory": "Я помню чудное мгновенье: передо мной явилась ты, как мимолётное виденье, "
                      "как гений чистой красоты.",
    "basho": "古池や蛙飛び込む水の音",
    "table-a": "2024 1999 3 14 15 92 65 35 89 79",
    "table-b": "1 2 3 4 5 6 7 8 9 10 11 12",
}


def test_shingles_read_unicode_words_and_characters_of_scripts_without_spaces():
    assert shingles(POEMS["pushkin-winter"], 2) >= {"мороз и", "день чудесный", "друг прелестный"}
    assert shingles("Αλφα βήτα γάμμα", 3) == {"αλφα βήτα γάμμα"}
    assert shingles(POEMS["table-a"], 3) >= {"2024 1999 3", "14 15 92"}
    chars = "古池や蛙飛び込む水の音"  # no spaces: every run of 3 characters is a shingle
    assert shingles(chars, 3) == {" ".join(chars[i:i + 3]) for i in range(len(chars) - 2)}
    line = POEMS["li-bai"].split("，")[0]
    assert shingles(line, 2) == {" ".join(line[i:i + 2]) for i in range(len(line) - 1)}
    assert all(shingles(text) for text in POEMS.values())


def test_documents_in_other_scripts_are_near_duplicates_only_of_their_copies():
    copy = POEMS["li-bai"].replace("霜", "雪")  # one character changed
    docs = [Document(name, text) for name, text in POEMS.items()] + [Document("li-bai-copy", copy)]
    truth = {("li-bai", "li-bai-copy")}
    exact = {(a.name, b.name) for i, a in enumerate(docs) for b in docs[i + 1:]
             if jaccard(shingles(a.text), shingles(b.text)) >= 0.5}
    assert exact == truth  # the exact answer, from plain sets
    signatures = {d.name: minhash_signature(shingles(d.text), 128) for d in docs}
    assert verify_candidates(lsh_candidates(signatures, bands=32), signatures, 0.5) == truth
    assert datasketch_candidates(datasketch_minhashes(docs, num_perm=128), threshold=0.5) == truth


def test_documents_without_words_are_never_duplicates():
    empty = ["!!!", "... ?", ""]
    assert all(shingles(text) == set() for text in empty)
    assert jaccard(set(), set()) == 0.0 and jaccard(set(), {"a"}) == 0.0
    sigs = {text: minhash_signature(shingles(text), 64) for text in empty}
    sigs["words"] = minhash_signature(shingles("to be or not to be"), 64)
    assert estimated_jaccard(sigs["!!!"], sigs[""]) == 0.0
    assert lsh_candidates(sigs, bands=16) == set()
    docs = [Document(str(i), text) for i, text in enumerate(empty)]
    assert datasketch_candidates(datasketch_minhashes(docs, num_perm=64), threshold=0.5) == set()


def test_minhash_permutations_are_exact_modular_arithmetic():
    """The values must be (a*h + b) mod p as Python's unbounded integers compute them: no
    wrap-around at 2^64."""
    rng = random.Random(0)
    hashes = [PRIME - 1, PRIME - 2, 0] + [rng.randrange(PRIME) for _ in range(5000)]
    a = [PRIME - 1] + [rng.randrange(1, PRIME) for _ in range(63)]
    b = [PRIME - 1] + [rng.randrange(PRIME) for _ in range(63)]
    expected = [min((ai * h + bi) % PRIME for h in hashes) for ai, bi in zip(a, b, strict=True)]
    assert min_hashes(hashes, a, b).tolist() == expected
    # and a signature is exactly that, over the shingles' hashes, with the documented coefficients
    words = shingles("the quick brown fox jumps over the lazy dog again and again")
    a2, b2 = permutations(16, seed=3)
    expected = [min((int(ai) * shingle_hash(s) + int(bi)) % PRIME for s in words)
                for ai, bi in zip(a2, b2, strict=True)]
    assert minhash_signature(words, 16, seed=3).tolist() == expected


@pytest.mark.parametrize("call, message", [
    (lambda: min_hashes([PRIME], [1], [0]), r"hashes must lie in \[0, 2147483647\)"),
    (lambda: min_hashes([1], [0], [0]), "a must lie in"),
    (lambda: min_hashes([1], [1, 2], [0]), "one entry per permutation"),
    (lambda: min_hashes([1], [1], [0], prime=1 << 40), "fits in 64 bits"),
    (lambda: min_hashes([], [1], [0]), "non-empty"),
    (lambda: shingles("text", 0), "at least 1"),
])
def test_bad_minhash_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_minhash_estimates_jaccard_without_bias_and_agrees_with_datasketch():
    from datasketch import MinHash

    rng = random.Random(0)
    universe = [f"w{i}" for i in range(3000)] + [f"詞{i}" for i in range(3000)]
    ours_errors, theirs_errors = [], []
    for _ in range(20):
        a = set(rng.sample(universe, 800))
        keep = rng.randrange(100, 700)
        b = set(rng.sample(sorted(a), keep)) | set(rng.sample(universe, 800 - keep))
        exact = jaccard(a, b)
        ours = estimated_jaccard(minhash_signature(a, 256), minhash_signature(b, 256))
        ma, mb = MinHash(num_perm=256), MinHash(num_perm=256)
        ma.update_batch([s.encode() for s in a])
        mb.update_batch([s.encode() for s in b])
        ours_errors.append(ours - exact)
        theirs_errors.append(ma.jaccard(mb) - exact)
    assert max(map(abs, ours_errors)) < 0.1 and max(map(abs, theirs_errors)) < 0.1
    assert abs(np.mean(ours_errors)) < 0.02 and abs(np.mean(theirs_errors)) < 0.02
    assert np.std(ours_errors) < 1.5 * np.std(theirs_errors) + 0.01  # as precise as the reference


def test_identical_documents_always_collide_in_lsh():
    sig = minhash_signature(shingles("the same text " * 20), 64)
    other = minhash_signature({"other"}, 64)
    assert ("x", "y") in lsh_candidates({"x": sig, "y": sig.copy(), "z": other}, 16)


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
    above_every_pair = datasketch_candidates(sketches, threshold=0.5)
    assert precision_recall(above_every_pair, truth)[1] < 0.2


def passages(docs, n):
    """n passages of 1500 characters, evenly spaced through the documents."""
    text = "\n\n".join(d.text for d in docs)
    step = len(text) // n
    return [text[i:i + 1500] for i in range(0, step * n, step)]


@pytest.fixture(scope="module")
def prose():
    train, val = split_documents(load_corpus("shakespeare").documents, 0.1)
    return passages(train, 80), passages(val, 30)  # held-out passages: works never trained on


def test_gopher_rules_keep_prose_and_catch_every_kind_of_junk(prose):
    _, held_out = prose
    assert sum(bool(failed_rules(p)) for p in held_out) == 0
    for kind in JUNK_KINDS:
        junk = synthetic_low_quality(10, seed=7, kinds=[kind])
        assert all(failed_rules(doc) for doc in junk), kind


def test_classifier_on_works_and_kinds_of_junk_it_never_saw(prose):
    """Leave one kind of junk out of training at a time. The classifier must keep prose from
    held-out works and catch fresh documents of the kinds it saw; the filter as a whole (rules, then
    the classifier) must also remove the kind it never saw."""
    train_prose, held_out_prose = prose
    for unseen in JUNK_KINDS:
        seen = [k for k in JUNK_KINDS if k != unseen]
        model = QualityClassifier().fit(train_prose, synthetic_low_quality(80, seed=1, kinds=seen))
        assert (model.score(held_out_prose) > 0.5).float().mean() >= 0.9
        fresh = synthetic_low_quality(40, seed=2, kinds=seen)
        assert (model.score(fresh) < 0.5).float().mean() >= 0.9
        never_seen = synthetic_low_quality(20, seed=3, kinds=[unseen])
        removed = [bool(failed_rules(doc)) or model.score([doc]).item() < 0.5 for doc in never_seen]
        kept_prose = [not failed_rules(p) and model.score([p]).item() > 0.5 for p in held_out_prose]
        assert np.mean(removed) >= 0.9 and np.mean(kept_prose) >= 0.9, unseen
    with pytest.raises(ValueError, match="both"):
        QualityClassifier().fit(train_prose, [])
    with pytest.raises(ValueError, match="kinds must be some of"):
        synthetic_low_quality(3, kinds=["ads"])
