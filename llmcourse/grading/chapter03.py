"""Chapter 3's exercises: pair counts, one merge, training merges, encoding with merges, and
training windows. The references are the package's own: `llmcourse.tokenizer.naive` (textbook
BPE, with the fast trainer's rule for ties), `merge_pair` and `WindowDataset`."""
from __future__ import annotations

import torch

from llmcourse.data.batches import WindowDataset
from llmcourse.grading.exercise import Exercise, register, same_sequence, tensors_close
from llmcourse.tokenizer import merge_pair
from llmcourse.tokenizer.naive import encode_with_merges, most_frequent_pair, train_merges


def _text(g: torch.Generator, n: int, alphabet: str = "abcd ") -> str:
    return "".join(alphabet[int(i)] for i in torch.randint(0, len(alphabet), (n,), generator=g))


def _letters(ids: list[int], merged: dict[int, bytes] | None = None) -> dict[int, bytes]:
    """The vocabulary of the ids in a case: single bytes, plus the merged tokens given."""
    return {i: bytes([i]) for i in sorted(set(ids)) if i < 256} | (merged or {})


def _pair_cases(g: torch.Generator) -> list:
    merged = {256: b"ab", 257: b"ca"}
    ids = [[97, 98, 99, 256, 257][int(i)] for i in torch.randint(0, 5, (60,), generator=g)]
    return [("random ids, two of them merged tokens", (ids, _letters(ids, merged))),
            ("a tie: the pair with the greater bytes wins",
             ([97, 98, 99, 100], _letters([97, 98, 99, 100]))),
            ("a tie decided by bytes, not ids: b'z' > b'ab'",
             ([256, 97, 122, 97], _letters([97, 122], {256: b"ab"}))),
            ("one repeated id", ([3, 3, 3, 3], _letters([3])))]


register(Exercise("3.1", "The most frequent pair", "most_frequent_pair", points=1,
    reference=most_frequent_pair, compare=same_sequence,
    cases=_pair_cases,
    hint="count zip(ids, ids[1:]); among the most frequent pairs return the one whose bytes are "
         "greatest, comparing (vocab[a], vocab[b]) as tuples (one max with a key can do both).",
))

register(Exercise("3.2", "One merge", "merge", points=2,
    reference=merge_pair, compare=same_sequence,
    cases=lambda g: [("random ids", (torch.randint(0, 4, (50,), generator=g).tolist(), (1, 2), 99)),
                     ("overlapping occurrences", ([7, 7, 7], (7, 7), 8)),
                     ("the pair at the very end", ([1, 2, 3, 1, 2], (1, 2), 9)),
                     ("no occurrence", ([1, 3, 2], (1, 2), 9))],
    hint="walk left to right; at a match emit new_id and skip two places, otherwise copy one id "
         "and move one.",
))

register(Exercise("3.3", "Training a few merges", "train_merges", points=3,
    reference=train_merges, compare=same_sequence,
    cases=lambda g: [("random text over 5 letters, 10 merges", (_text(g, 300), 10)),
                     ("a short text runs out of pairs", ("abab", 5)),
                     ("text with non-ASCII characters", ("héllo héllo wörld", 6))],
    hint="start from the UTF-8 bytes and vocab = {i: bytes([i]) for i in range(256)}; n times: "
         "find the most frequent pair (ties to the greater bytes), merge it into id 256 + i, set "
         "vocab[256 + i] to the joined bytes, record the pair. Stop early when fewer than two ids "
         "are left.",
))

register(Exercise("3.4", "Encoding with a merge table", "encode_with_merges", points=3,
    reference=encode_with_merges, compare=same_sequence,
    cases=lambda g: [(f"{label}", (text, train_merges(_text(g, 400), 20)))
                     for label, text in [("random text", _text(g, 60)),
                                         ("letters the merges never saw", "xyz"),
                                         ("empty text", "")]],
    hint="repeatedly pick, among the adjacent pairs present, the one learned earliest (lowest "
         "index in merges), and merge it into 256 + that index; stop when no adjacent pair is in "
         "the table.",
))


def _windows(ids: torch.Tensor, context_length: int,
             stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = list(WindowDataset(ids, context_length, stride))
    return torch.stack([x for x, _ in pairs]), torch.stack([y for _, y in pairs])


register(Exercise("3.5", "Training windows", "sliding_windows", points=2,
    reference=_windows, compare=tensors_close(("inputs", "targets"), atol=0),
    cases=lambda g: [("100 ids, T=8, stride 8",
                      (torch.randint(0, 50, (100,), generator=g), 8, 8)),
                     ("overlapping windows, stride 3", (torch.arange(30), 5, 3)),
                     ("exactly one window", (torch.arange(9), 8, 8))],
    hint="window i starts at i * stride; inputs are ids[start : start + T], targets "
         "ids[start + 1 : start + T + 1]; make every window whose target fits, and stack them "
         "into (N, T) tensors.",
))
