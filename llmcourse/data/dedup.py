"""Deduplication: exact (a hash of the normalised text) and near-duplicate (MinHash with
locality-sensitive hashing).

The from-scratch MinHash and LSH here are the lesson; `datasketch_candidates` is the production path
with the datasketch library. Both are measured against a known pairing: the Shakespeare plays in
modern and in First Folio spelling.

>>> a, b = shingles("the cat sat on the mat"), shingles("the cat sat on a mat")
>>> round(jaccard(a, b), 2)
0.33
"""
from __future__ import annotations

import hashlib
import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from llmcourse.data.cleaning import normalize_text
from llmcourse.data.corpus import Document

# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, Japanese kana and Chinese
# characters. Each of their characters counts as a word, so their shingles are runs of k characters.
_NO_SPACES = (r"\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff"
              r"\uf900-\ufaff\U00020000-\U0002ffff")
# a word: one character of those scripts, else a run of Unicode letters, digits and underscores
WORD = re.compile(rf"[{_NO_SPACES}]|[^\W{_NO_SPACES}]+")
PRIME = (1 << 31) - 1  # the Mersenne prime 2^31 - 1: MinHash permutes hash values in [0, PRIME)
_MIN_HASH_CHUNK = 4096  # shingles per step: bounds the (permutations, shingles) table to a few MB

# Folio titles whose file names differ from the modern edition's
FOLIO_TO_MODERN = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}
Pair = tuple[str, str]


def exact_duplicate_groups(docs: Sequence[Document]) -> list[list[str]]:
    """Names of documents whose normalised text is identical, in groups of two or more."""
    groups: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        groups[hashlib.sha256(normalize_text(doc.text).encode()).hexdigest()].append(doc.name)
    return [names for names in groups.values() if len(names) > 1]


def shingles(text: str, k: int = 3) -> set[str]:
    """The set of k-word sequences of the lowercased words of `text`, each joined by single spaces
    (fewer than k words: all of them as one shingle; no words: the empty set).

    Words are Unicode words (`WORD`), so Cyrillic, Greek or digits count. Chinese, Japanese and Thai
    put no spaces between words, so there every character is a word and the shingles are k-character
    sequences.

    >>> sorted(shingles("Москва - столица России", k=2))
    ['москва столица', 'столица россии']
    >>> sorted(shingles("東京タワー", k=3))
    ['タ ワ ー', '京 タ ワ', '東 京 タ']
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    words = WORD.findall(text.lower())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    """|A & B| / |A | B|. An empty set shares nothing with any set, not even another empty one: a
    document without shingles is never anyone's near-duplicate.

    >>> jaccard({"a", "b"}, {"b", "c"}), jaccard(set(), set())
    (0.3333333333333333, 0.0)
    """
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def shingle_hash(shingle: str) -> int:
    """A hash of `shingle` in [0, PRIME): its first 8 BLAKE2b digest bytes, reduced modulo PRIME."""
    digest = hashlib.blake2b(shingle.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % PRIME


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients a in [1, PRIME) and b in [0, PRIME) of `num_perm` random permutations
    x -> (a*x + b) mod PRIME, the same for every document that uses the same seed."""
    if num_perm < 1:
        raise ValueError(f"num_perm must be at least 1, got {num_perm}")
    rng = np.random.default_rng(seed)
    return (rng.integers(1, PRIME, size=num_perm, dtype=np.uint64),
            rng.integers(0, PRIME, size=num_perm, dtype=np.uint64))


def _integers(name: str, values: Iterable[int] | np.ndarray, low: int, high: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a non-empty 1-D array of integers, got shape "
                         f"{array.shape} and dtype {array.dtype}")
    if int(array.min()) < low or int(array.max()) >= high:
        raise ValueError(f"{name} must lie in [{low}, {high}), got values from "
                         f"{int(array.min())} to {int(array.max())}")
    return array.astype(np.uint64)


def min_hashes(hashes: Iterable[int] | np.ndarray, a: Iterable[int] | np.ndarray,
               b: Iterable[int] | np.ndarray, prime: int = PRIME) -> np.ndarray:
    """For each permutation i, the smallest (a[i] * h + b[i]) mod prime over the hashes h.

    With 0 < a < prime, h -> (a*h + b) mod prime is a bijection of [0, prime): a true permutation
    of the hash values, so distinct hashes keep distinct values. Every operand is below
    prime <= 2^32, so a*h + b < 2^64 and the uint64 arithmetic is exact: nothing wraps around.

    >>> min_hashes([3, 5], a=[2, 4], b=[1, 0], prime=7).tolist()  # 2*3+1 = 0 and 4*3 = 5 mod 7
    [0, 5]
    """
    if not 2 <= prime <= 1 << 32:
        raise ValueError(f"prime must be in [2, 2^32] so that a*h + b fits in 64 bits, got {prime}")
    h = _integers("hashes", hashes, 0, prime)
    a_, b_ = _integers("a", a, 1, prime)[:, None], _integers("b", b, 0, prime)[:, None]
    if a_.shape != b_.shape:
        raise ValueError(f"a and b need one entry per permutation, got {len(a_)} and {len(b_)}")
    out = np.full(len(a_), prime, dtype=np.uint64)  # above every value a permutation gives
    p = np.uint64(prime)
    for start in range(0, h.size, _MIN_HASH_CHUNK):
        values = (a_ * h[None, start:start + _MIN_HASH_CHUNK] + b_) % p
        np.minimum(out, values.min(axis=1), out=out)
    return out


def minhash_signature(shingle_set: Iterable[str], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """num_perm minimum hash values. For a random permutation h of the hash values, the smallest h
    over A ∪ B is equally likely to come from any of its elements, so
    P[min h(A) == min h(B)] = |A & B| / |A | B| = J(A, B), and the share of equal entries in two
    signatures estimates the Jaccard similarity of the two sets.

    The permutations are x -> (a*x + b) mod PRIME (see `min_hashes`), with x = `shingle_hash`. They
    are real permutations, but drawn from a small family rather than from all orderings, so the
    equation above holds only approximately; the tests measure the estimate against exact Jaccard
    and against datasketch.

    The empty set gets PRIME in every entry, a value no permutation takes: it matches nothing.
    """
    a, b = permutations(num_perm, seed)
    x = np.fromiter((shingle_hash(s) for s in shingle_set), dtype=np.uint64)
    if x.size == 0:
        return np.full(num_perm, PRIME, dtype=np.uint64)
    return min_hashes(x, a, b)


def is_empty_signature(signature: np.ndarray) -> bool:
    """Whether `signature` is the MinHash of an empty set (every entry PRIME)."""
    return bool(np.all(np.asarray(signature) == PRIME))


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The share of positions where two signatures agree; 0.0 when either is the signature of an
    empty set."""
    a, b = np.asarray(sig_a), np.asarray(sig_b)
    if a.shape != b.shape:
        raise ValueError(f"signatures of different shapes cannot be compared: {a.shape} and "
                         f"{b.shape}")
    if is_empty_signature(a) or is_empty_signature(b):
        return 0.0
    return float(np.mean(a == b))


def lsh_candidates(signatures: dict[str, np.ndarray], bands: int) -> set[Pair]:
    """Pairs that agree on all rows of at least one band. With b bands of r rows, a pair of Jaccard
    s becomes a candidate with probability 1 - (1 - s^r)^b: an S-curve whose threshold is near
    (1/b)^(1/r). Documents without shingles (empty signatures) are never candidates."""
    buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    for name, sig in signatures.items():
        if sig.size % bands:
            raise ValueError(f"num_perm={sig.size} is not divisible by bands={bands}")
        if is_empty_signature(sig):
            continue
        for band, rows in enumerate(np.split(sig, bands)):
            buckets[(band, rows.tobytes())].append(name)
    return {tuple(sorted(pair)) for names in buckets.values()
            for pair in itertools.combinations(names, 2)}


def datasketch_minhashes(docs: Sequence[Document], num_perm: int = 128, k: int = 3,
                         seed: int = 1) -> dict:
    """name -> datasketch MinHash of the document's word k-shingles."""
    from datasketch import MinHash

    sketches = {}
    for doc in docs:
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([s.encode() for s in shingles(doc.text, k)])
        sketches[doc.name] = m
    return sketches


def datasketch_candidates(sketches: dict, threshold: float) -> set[Pair]:
    """Candidate near-duplicate pairs from datasketch's MinHashLSH (the production path), which
    picks the bands and rows for `threshold` itself. Empty sketches (documents without shingles)
    are left out: they would all match one another."""
    from datasketch import MinHashLSH

    sketches = {name: m for name, m in sketches.items() if not m.is_empty()}
    if not sketches:
        return set()
    num_perm = next(iter(sketches.values())).hashvalues.size
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for name, m in sketches.items():
        lsh.insert(name, m)
    return {tuple(sorted((name, other))) for name, m in sketches.items()
            for other in lsh.query(m) if other != name}


def precision_recall(found: set[Pair], truth: set[Pair]) -> tuple[float, float]:
    """Precision (the share of found pairs that are true; 1.0 when nothing is found) and recall
    (the share of true pairs found).

    >>> precision_recall({("a", "b"), ("a", "c")}, {("a", "b"), ("c", "d")})
    (0.5, 0.5)
    """
    true_positives = len(found & truth)
    precision = true_positives / len(found) if found else 1.0
    return precision, true_positives / len(truth) if truth else 1.0


def folio_pairs(modern: Sequence[Document],
                folio: Sequence[Document]) -> tuple[list[Document], set[Pair]]:
    """The two editions as one collection (names prefixed "modern/" and "folio/") and the set of
    true near-duplicate pairs: each Folio play with its modern edition."""
    docs = ([Document(f"modern/{d.name}", d.text) for d in modern]
            + [Document(f"folio/{d.name}", d.text) for d in folio])
    modern_names = {d.name for d in modern}
    truth = set()
    for d in folio:
        match = FOLIO_TO_MODERN.get(d.name, d.name)
        if match not in modern_names:
            raise ValueError(f"no modern edition for the Folio text {d.name!r}")
        truth.add(tuple(sorted((f"folio/{d.name}", f"modern/{match}"))))
    return docs, truth


def verify_candidates(candidates: set[Pair], signatures: dict[str, np.ndarray],
                      threshold: float) -> set[Pair]:
    """Keep the LSH candidates whose estimated Jaccard reaches `threshold`: LSH finds pairs cheaply
    but approximately; this second look removes most of its false positives."""
    return {(a, b) for a, b in candidates
            if estimated_jaccard(signatures[a], signatures[b]) >= threshold}
