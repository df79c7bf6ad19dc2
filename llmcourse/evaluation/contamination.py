"""Contamination: test items that the model saw in training, found with chapter 2's tools.

A test item that also sits in the training data measures memory, not skill, and inflates the
score. Exact overlap is found by hashing normalised texts; a reworded copy ("Reply with the first
word" where training said "Find the first word", with the same input) escapes that check, and is
found as a near-duplicate: MinHash signatures of word shingles, candidates by LSH, kept when their
estimated Jaccard similarity reaches a threshold (chapter 2's `dedup`).

>>> found = overlap(["Find the first word. ox ant", "Reply with the first word. ox ant",
...                  "Reply with the first word. bee cat"],
...                 ["Find the first word. ox ant", "Find the first word. bee dog"], k=2)
>>> found.exact, found.near
([0], [1])
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmcourse.data.cleaning import normalize_text
from llmcourse.data.dedup import is_empty_signature, minhash_signature, shingles


def _digest(text: str) -> str:
    return hashlib.sha256(" ".join(normalize_text(text).lower().split()).encode()).hexdigest()


@dataclass(frozen=True)
class Overlap:
    exact: list[int]  # test items found verbatim (after normalising case and white space)
    near: list[int]  # test items not exact, but a near-duplicate of a training text
    similarity: dict[int, float]  # the best estimated Jaccard of each flagged test item

    @property
    def flagged(self) -> list[int]:
        return sorted(self.exact + self.near)


class TrainingIndex:
    """A training set indexed once, to be asked about many test items: the digests of its
    normalised texts, and their MinHash signatures in LSH buckets (`bands` bands of
    num_perm / bands rows; a test item's candidates are the training texts that share a bucket
    with it). With 32 bands of 4 rows, LSH proposes pairs from a similarity of about
    (1/32)^(1/4) = 0.42."""

    def __init__(self, train: Sequence[str], k: int = 3, num_perm: int = 128,
                 bands: int = 32) -> None:
        if num_perm % bands:
            raise ValueError(f"num_perm={num_perm} is not divisible by bands={bands}")
        self.k, self.num_perm, self.bands = k, num_perm, bands
        self.digests = {_digest(t) for t in train}
        signatures = [minhash_signature(shingles(t, k), num_perm) for t in train]
        self.signatures = np.stack(signatures) if signatures else np.zeros((0, num_perm))
        self.buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        for j, signature in enumerate(signatures):
            if not is_empty_signature(signature):
                for band, rows in enumerate(np.split(signature, bands)):
                    self.buckets[(band, rows.tobytes())].append(j)

    def similarity(self, text: str) -> float:
        """The best estimated Jaccard similarity of `text` with a training text that shares an
        LSH bucket with it (0.0 where none does)."""
        signature = minhash_signature(shingles(text, self.k), self.num_perm)
        if is_empty_signature(signature):
            return 0.0
        candidates = {j for band, rows in enumerate(np.split(signature, self.bands))
                      for j in self.buckets.get((band, rows.tobytes()), ())}
        if not candidates:
            return 0.0
        agree = self.signatures[sorted(candidates)] == signature  # (candidates, num_perm)
        return float(agree.mean(axis=1).max())

    def overlap(self, test: Sequence[str], threshold: float = 0.5) -> Overlap:
        """Which `test` texts appear in the training set: exactly, or as near-duplicates whose
        estimated Jaccard similarity with some training text is at least `threshold`."""
        exact = [i for i, t in enumerate(test) if _digest(t) in self.digests]
        exact_set = set(exact)
        best = {i: self.similarity(t) for i, t in enumerate(test) if i not in exact_set}
        near = sorted(i for i, similarity in best.items() if similarity >= threshold)
        return Overlap(exact, near, {**{i: 1.0 for i in exact}, **{i: best[i] for i in near}})


def overlap(test: Sequence[str], train: Sequence[str], threshold: float = 0.5, k: int = 3,
            num_perm: int = 128, bands: int = 32) -> Overlap:
    """Which `test` texts appear in `train`: exactly, or as near-duplicates whose word k-shingles
    have an estimated Jaccard similarity of at least `threshold` with some training text
    (`TrainingIndex`)."""
    return TrainingIndex(train, k, num_perm, bands).overlap(test, threshold)
