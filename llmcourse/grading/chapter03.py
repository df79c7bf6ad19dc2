"""Chapter 3's exercises: pair counts, one merge, training merges, encoding with merges, and training windows."""
from __future__ import annotations

from collections import Counter

import torch

from llmcourse.batches import WindowDataset
from llmcourse.grading.exercise import Exercise, register, same_sequence, same_tensors
from llmcourse.tokenizer import merge_pair


def most_frequent_pair(ids: list[int]) -> tuple[int, int]:
    counts = Counter(zip(ids, ids[1:]))
    return min(counts, key=lambda p: (-counts[p], p))  # ties go to the smallest pair


def train_merges(text: str, n_merges: int) -> list[tuple[int, int]]:
    """Textbook byte-level BPE on the whole text as one sequence; merge i creates id 256 + i."""
    ids, merges = list(text.encode("utf-8")), []
    for i in range(n_merges):
        if len(ids) < 2:
            break
        pair = most_frequent_pair(ids)
        ids = merge_pair(ids, pair, 256 + i)
        merges.append(pair)
    return merges


def encode_with_merges(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Apply learned merges to new text, always the earliest-learned merge first."""
    order = {tuple(pair): i for i, pair in enumerate(merges)}
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: order.get(p, float("inf")))
        if pair not in order:
            break
        ids = merge_pair(ids, pair, 256 + order[pair])
    return ids


def _text(g: torch.Generator, n: int, alphabet: str = "abcd ") -> str:
    return "".join(alphabet[int(i)] for i in torch.randint(0, len(alphabet), (n,), generator=g))


register(Exercise(
    id="3.1", title="The most frequent pair", function="most_frequent_pair", points=1,
    cases=lambda g: [("random ids", (torch.randint(0, 6, (60,), generator=g).tolist(),)),
                     ("a tie: the smaller pair wins", ([5, 6, 1, 2],)),
                     ("one repeated id", ([3, 3, 3, 3],))],
    reference=most_frequent_pair,
    compare=lambda expected, got: same_sequence(expected, got),
    hint="count zip(ids, ids[1:]); among the most frequent pairs return the smallest (compare pairs as tuples).",
))

register(Exercise(
    id="3.2", title="One merge", function="merge", points=2,
    cases=lambda g: [("random ids", (torch.randint(0, 4, (50,), generator=g).tolist(), (1, 2), 99)),
                     ("overlapping occurrences", ([7, 7, 7], (7, 7), 8)),
                     ("the pair at the very end", ([1, 2, 3, 1, 2], (1, 2), 9)),
                     ("no occurrence", ([1, 3, 2], (1, 2), 9))],
    reference=merge_pair,
    compare=same_sequence,
    hint="walk left to right; at a match emit new_id and skip two places, otherwise copy one id and move one.",
))

register(Exercise(
    id="3.3", title="Training a few merges", function="train_merges", points=3,
    cases=lambda g: [("random text over 5 letters, 10 merges", (_text(g, 300), 10)),
                     ("a short text runs out of pairs", ("abab", 5)),
                     ("text with non-ASCII characters", ("héllo héllo wörld", 6))],
    reference=train_merges,
    compare=same_sequence,
    hint="start from the UTF-8 bytes; n times: find the most frequent pair (ties to the smaller), merge it into "
         "id 256 + i, record the pair. Stop early when fewer than two ids are left.",
))

register(Exercise(
    id="3.4", title="Encoding with a merge table", function="encode_with_merges", points=3,
    cases=lambda g: [(f"{label}", (text, train_merges(_text(g, 400), 20)))
                     for label, text in [("random text", _text(g, 60)), ("letters the merges never saw", "xyz"),
                                         ("empty text", "")]],
    reference=encode_with_merges,
    compare=same_sequence,
    hint="repeatedly pick, among the adjacent pairs present, the one learned earliest (lowest index in merges), "
         "and merge it into 256 + that index; stop when no adjacent pair is in the table.",
))


def _windows(ids: torch.Tensor, context_length: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = list(WindowDataset(ids, context_length, stride))
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


register(Exercise(
    id="3.5", title="Training windows", function="sliding_windows", points=2,
    cases=lambda g: [("100 ids, T=8, stride 8", (torch.randint(0, 50, (100,), generator=g), 8, 8)),
                     ("overlapping windows, stride 3", (torch.arange(30), 5, 3)),
                     ("exactly one window", (torch.arange(9), 8, 8))],
    reference=_windows,
    compare=lambda expected, got: same_tensors(expected, got, ("inputs", "targets"), atol=0),
    hint="window i starts at i * stride; inputs are ids[start : start + T], targets ids[start + 1 : start + T + 1]; "
         "make every window whose target fits, and stack them into (N, T) tensors.",
))
