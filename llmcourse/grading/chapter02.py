"""Chapter 2's exercises: shingles, Jaccard similarity, MinHash, its Jaccard estimate, precision and
recall. Every reference is llmcourse.data.dedup's own function."""
from __future__ import annotations

import numpy as np
import torch

from llmcourse.data.dedup import (
    PRIME,
    estimated_jaccard,
    jaccard,
    min_hashes,
    precision_recall,
    shingles,
)
from llmcourse.grading.exercise import (
    Exercise,
    close_number,
    register,
    same_sequence,
    same_set,
    same_tensor,
)

_WORDS = ["the", "king", "queen", "and", "of", "my", "lord", "to", "is", "a", "sword", "crown",
          "night", "love"]


def _sentence(g: torch.Generator, n: int) -> str:
    words = [_WORDS[int(i)] for i in torch.randint(0, len(_WORDS), (n,), generator=g)]
    return " ".join(w.capitalize() if j % 7 == 0 else w for j, w in enumerate(words)) + "."


register(Exercise("2.1", "Word shingles", "word_shingles", points=2,
    reference=shingles, compare=same_set,
    cases=lambda g: [
        ("a random sentence, k=3", (_sentence(g, 30), 3)),
        ("a random sentence, k=2", (_sentence(g, 12), 2)),
        ("capitals and punctuation", ("The King, the KING; the king!", 2)),
        ("Cyrillic words", ("Мороз и солнце; день чудесный!", 2)),
        ("Chinese: no spaces, one word per character", ("床前明月光，疑是地上霜。", 3)),
        ("numbers are words too", ("In 1623, 36 plays; in 1600, 18.", 2)),
        ("fewer words than k", ("to be", 3)),
        ("no words at all", ("... !!", 3)),
    ],
    hint="lowercase, take the words with WORD.findall, and join each run of k consecutive words "
         "with single spaces; with fewer than k words the whole text is one shingle, and no words "
         "give the empty set.",
))

register(Exercise("2.2", "Jaccard similarity of two texts", "jaccard_similarity", points=1,
    reference=lambda a, b, k: jaccard(shingles(a, k), shingles(b, k)), compare=close_number,
    cases=lambda g: [
        ("two random texts", (_sentence(g, 40), _sentence(g, 40), 2)),
        ("a text and a shorter copy", ("a b c d e f g", "a b c d", 2)),
        ("identical texts", ("to be or not to be", "to be or not to be", 3)),
        ("a text and a text without words", ("to be or not to be", "?!", 2)),
        ("two texts without words", ("!!", "??", 3)),
    ],
    hint="|A & B| / |A | B| of the two shingle sets; when both are empty the union is empty too, "
         "and the answer is 0.0: a text without words is a near-duplicate of nothing.",
))


def _minhash_case(g: torch.Generator, n: int, perms: int) -> tuple:
    # values up to the prime, as in the package: a * h + b stays below 2^62, inside int64
    return (torch.randint(0, PRIME, (n,), generator=g),
            torch.randint(1, PRIME, (perms,), generator=g),
            torch.randint(0, PRIME, (perms,), generator=g), PRIME)


def _min_hashes(hashes: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                prime: int) -> torch.Tensor:
    signature = min_hashes(hashes.numpy(), a.numpy(), b.numpy(), prime)
    return torch.from_numpy(signature.astype(np.int64))


register(Exercise("2.3", "A MinHash signature", "minhash", points=3,
    reference=_min_hashes, compare=same_tensor,
    cases=lambda g: [
        ("50 shingle hashes, 16 permutations", _minhash_case(g, 50, 16)),
        ("one shingle, 8 permutations", _minhash_case(g, 1, 8)),
        ("400 shingle hashes, 64 permutations", _minhash_case(g, 400, 64)),
        ("the largest values", (torch.tensor([PRIME - 1, 0]), torch.tensor([PRIME - 1]),
                                torch.tensor([PRIME - 1]), PRIME)),
    ],
    hint="for permutation i the value of shingle h is (a[i] * h + b[i]) % prime; the signature "
         "holds, for each i, the minimum over all shingles. Broadcasting a[:, None] against "
         "hashes[None, :] does it in one line.",
))

register(Exercise("2.4", "Jaccard estimate from signatures", "signature_similarity", points=1,
    reference=lambda a, b: estimated_jaccard(np.asarray(a), np.asarray(b)), compare=close_number,
    cases=lambda g: [
        ("random signatures sharing some entries", (torch.randint(0, 5, (128,), generator=g),
                                                   torch.randint(0, 5, (128,), generator=g))),
        ("identical signatures", (torch.arange(64), torch.arange(64))),
        ("nothing in common", (torch.zeros(32, dtype=torch.long),
                               torch.ones(32, dtype=torch.long))),
    ],
    hint="the share of positions where the two signatures are equal.",
))


def _pairs(g: torch.Generator, n: int, universe: int) -> list[tuple[str, str]]:
    ids = torch.randint(0, universe, (n, 2), generator=g).tolist()
    return sorted({(f"d{min(a, b)}", f"d{max(a, b)}") for a, b in ids if a != b})


def _rounded(values: object) -> object:
    if not isinstance(values, (list, tuple)):
        return values
    return [round(x, 9) if isinstance(x, float) else x for x in values]


def _same_rounded(expected: object, got: object) -> str | None:
    """same_sequence once the floats on both sides are rounded to 9 decimals."""
    return same_sequence(_rounded(expected), _rounded(got))


register(Exercise("2.5", "Precision and recall of found pairs", "pair_precision_recall", points=2,
    reference=lambda found, truth: precision_recall(set(map(tuple, found)), set(map(tuple, truth))),
    compare=_same_rounded,
    cases=lambda g: [
        ("random found and true pairs", (_pairs(g, 20, 8), _pairs(g, 12, 8))),
        ("everything found, nothing extra", ([("a", "b"), ("c", "d")], [("a", "b"), ("c", "d")])),
        ("nothing found", ([], [("a", "b")])),
    ],
    hint="precision = true pairs found / pairs found (1.0 when nothing is found); recall = true "
         "pairs found / true pairs. Compare them as sets of (a, b) tuples.",
))
