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
from collections.abc import Sequence
from dataclasses import dataclass

from llmcourse.data.cleaning import normalize_text
from llmcourse.data.dedup import estimated_jaccard, lsh_candidates, minhash_signature, shingles


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


def overlap(test: Sequence[str], train: Sequence[str], threshold: float = 0.5, k: int = 3,
            num_perm: int = 128, bands: int = 32) -> Overlap:
    """Which `test` texts appear in `train`: exactly, or as near-duplicates whose word k-shingles
    have an estimated Jaccard similarity of at least `threshold` with some training text. With 32
    bands of 4 rows, LSH proposes pairs from a similarity of about (1/32)^(1/4) = 0.42."""
    seen = {_digest(t) for t in train}
    exact = [i for i, t in enumerate(test) if _digest(t) in seen]
    signatures = {f"test/{i}": minhash_signature(shingles(t, k), num_perm)
                  for i, t in enumerate(test)}
    signatures |= {f"train/{j}": minhash_signature(shingles(t, k), num_perm)
                   for j, t in enumerate(train)}
    best: dict[int, float] = {}
    for a, b in lsh_candidates(signatures, bands):
        if a.startswith("test/") == b.startswith("test/"):
            continue  # two test items, or two training texts
        i = int((a if a.startswith("test/") else b).split("/")[1])
        similarity = estimated_jaccard(signatures[a], signatures[b])
        if similarity >= threshold:
            best[i] = max(best.get(i, 0.0), similarity)
    exact_set = set(exact)
    near = sorted(i for i in best if i not in exact_set)
    return Overlap(exact, near, {i: best.get(i, 1.0) for i in exact + near})
