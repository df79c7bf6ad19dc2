"""Textbook byte-level BPE, as small as it can be: the whole text is one sequence of UTF-8 bytes
(no pre-tokenization), every merge recounts every pair, and merge i makes the new id 256 + i.

It is slow (each merge rereads the whole text) but short enough to check by eye. The fast
trainer, `train_bpe`, is tested against it: on text that pre-tokenization does not split, both
learn the same merges, with the same rule for ties (the pair with the greater bytes). Chapter 3's
exercises are graded against these functions.

>>> merges = train_merges("abab abab", 2)
>>> merges  # (a, b) is seen 4 times; then (ab, ab) twice
[(97, 98), (256, 256)]
>>> build_vocab(merges)[257]
b'abab'
>>> encode_with_merges("ab abab", merges)
[256, 32, 257]
"""
from __future__ import annotations

from collections import Counter

from llmcourse.tokenizer.training import merge_pair


def most_frequent_pair(ids: list[int], vocab: dict[int, bytes]) -> tuple[int, int]:
    """The adjacent pair seen most often in `ids`; `vocab` maps each id to its bytes. Among
    equally frequent pairs, the one whose bytes are greater, comparing (vocab[a], vocab[b]) as a
    tuple, wins.

    >>> byte_vocab = {i: bytes([i]) for i in range(256)}
    >>> most_frequent_pair([1, 2, 3, 1, 2], byte_vocab)
    (1, 2)
    >>> most_frequent_pair(list(b"abcd"), byte_vocab)  # a tie: (c, d) has the greatest bytes
    (99, 100)
    >>> vocab = byte_vocab | {256: b"ab"}
    >>> most_frequent_pair([256, 97, 122, 97], vocab)  # bytes decide, not ids: b"z" > b"ab"
    (122, 97)
    """
    if len(ids) < 2:
        raise ValueError(f"need at least two ids to form a pair, got {len(ids)}")
    counts = Counter(zip(ids, ids[1:], strict=False))
    return max(counts, key=lambda pair: (counts[pair], vocab[pair[0]], vocab[pair[1]]))


def train_merges(text: str, n_merges: int) -> list[tuple[int, int]]:
    """The first `n_merges` merges of BPE on the UTF-8 bytes of `text`, as pairs of ids; merge i
    makes id 256 + i. Stops early when fewer than two ids are left.

    >>> train_merges("aaab", 5)  # (a, a) makes 256; then (256, a) and (a, b) tie, and b"aa" > b"a"
    [(97, 97), (256, 97), (257, 98)]
    """
    if n_merges < 0:
        raise ValueError(f"n_merges must be >= 0, got {n_merges}")
    ids = list(text.encode("utf-8"))
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    for i in range(n_merges):
        if len(ids) < 2:
            break
        pair = most_frequent_pair(ids, vocab)
        ids = merge_pair(ids, pair, 256 + i)
        vocab[256 + i] = vocab[pair[0]] + vocab[pair[1]]
        merges.append(pair)
    return merges


def build_vocab(merges: list[tuple[int, int]]) -> dict[int, bytes]:
    """The bytes of every id: the 256 single bytes, then one token per merge.

    >>> build_vocab([(104, 105), (256, 33)])[257]
    b'hi!'
    """
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return vocab


def encode_with_merges(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Ids of `text`: from its bytes, apply the earliest-learned merge present, again and again,
    until none is.

    >>> encode_with_merges("aaaa", [(97, 97), (256, 256)])
    [257]
    """
    order = {tuple(pair): i for i, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:], strict=False), key=lambda p: order.get(p, len(order)))
        if pair not in order:
            break
        ids = merge_pair(ids, pair, 256 + order[pair])
    return ids
