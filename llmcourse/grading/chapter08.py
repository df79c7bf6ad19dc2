"""Chapter 8's exercises: the label mask, collation with padding, a LoRA layer, merging LoRA and
exact-match scoring. The references are the package's own functions (llmcourse.finetune)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from llmcourse.finetune.collate import Example, encode_example, pad_batch
from llmcourse.finetune.lora import LoRALinear
from llmcourse.finetune.sft import score_answers
from llmcourse.grading.exercise import (
    Exercise,
    register,
    same_sequence,
    tensor_close,
    tensors_close,
)


def _ids(g: torch.Generator, low: int, high: int) -> list[int]:
    n = int(torch.randint(low, high + 1, (1,), generator=g))
    return torch.randint(0, 1000, (n,), generator=g).tolist()


def _mask(prompt: list[int], response: list[int]) -> tuple[list[int], list[int]]:
    e = encode_example(prompt, response, len(prompt) + len(response))
    return e.inputs, e.targets


def _pair(expected: tuple[list[int], list[int]], got: Any) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return f"expected a pair (inputs, targets), got {type(got).__name__} {got!r}"[:160]
    for name, e, g in zip(("inputs", "targets"), expected, got, strict=True):
        problem = same_sequence(e, g)
        if problem:
            return f"{name}: {problem}"
    return None


register(Exercise("8.1", "The label mask", "mask_labels", points=2,
    reference=_mask, compare=_pair,
    cases=lambda g: [("a 3-token prompt, a 2-token answer", ([5, 6, 7], [8, 9])),
                     ("a one-token prompt", ([1], [2, 3, 4])),
                     ("a one-token answer", ([10, 11, 12, 13], [14])),
                     *[(f"random example {i}", (_ids(g, 1, 12), _ids(g, 1, 6))) for i in range(3)]],
    hint="the inputs are prompt + response less the last token; the targets are the next token at "
         "each position, with -100 wherever the next token is still part of the prompt (the first "
         "len(prompt) - 1 positions).",
))


def _pad(examples: list[tuple[list[int], list[int]]], pad_id: int):
    batch = pad_batch([Example(inputs, targets) for inputs, targets in examples], pad_id)
    return batch.ids, batch.targets, batch.mask[:, 0, 0, :]


def _examples(g: torch.Generator, n: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for _ in range(n):
        inputs = _ids(g, 2, 10)
        k = int(torch.randint(1, len(inputs), (1,), generator=g))  # prompt targets masked
        targets = [-100] * k + _ids(g, len(inputs) - k, len(inputs) - k)
        out.append((inputs, targets))
    return out


register(Exercise("8.2", "Collation with padding", "pad_examples", points=3,
    reference=_pad, compare=tensors_close(("ids", "targets", "mask"), atol=0),
    cases=lambda g: [("two examples, pad 0", ([([1, 2, 3], [-100, 3, 4]), ([5], [6])], 0)),
                     ("four random examples, pad 999", (_examples(g, 4), 999)),
                     ("one example: nothing to pad", (_examples(g, 1), 0)),
                     ("equal lengths", ([([1, 2], [2, 3]), ([4, 5], [-100, 6])], 7))],
    hint="T is the longest example's length; ids start as pad_id and targets as -100, in (B, T) "
         "long tensors; copy each example in from the left; the mask is a (B, T) bool tensor, True "
         "at each example's real positions.",
))


def _lora_case(g: torch.Generator, d_in: int, d_out: int, r: int, alpha: float, batch: tuple):
    weight = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    bias = torch.randn(d_out, generator=g, dtype=torch.float64)
    A = torch.randn(r, d_in, generator=g, dtype=torch.float64)
    B = torch.randn(d_out, r, generator=g, dtype=torch.float64)
    return (torch.randn(*batch, d_in, generator=g, dtype=torch.float64), weight, bias, A, B, alpha)


def _layer(weight, bias, A, B, alpha) -> LoRALinear:
    base = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
    layer = LoRALinear(base, rank=A.shape[0], alpha=alpha)
    with torch.no_grad():
        base.weight.copy_(weight)
        base.bias.copy_(bias)
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    return layer


@torch.no_grad()
def _lora_forward(x, weight, bias, A, B, alpha):
    return _layer(weight, bias, A, B, alpha)(x)


register(Exercise("8.3", "A LoRA layer", "lora_forward", points=3,
    reference=_lora_forward, compare=tensor_close(atol=1e-9, rtol=1e-9),
    cases=lambda g: [("8 -> 4, rank 2, alpha 4, a batch of 3", _lora_case(g, 8, 4, 2, 4.0, (3,))),
                     ("16 -> 16, rank 4, alpha 8, (2, 5) tokens",
                      _lora_case(g, 16, 16, 4, 8.0, (2, 5))),
                     ("rank 1, alpha 1", _lora_case(g, 6, 3, 1, 1.0, (4,)))],
    hint="y = x W^T + b + (x A^T B^T) * (alpha / r), where r is A's number of rows; x may have "
         "any number of leading dimensions.",
))


@torch.no_grad()
def _merge(weight, A, B, alpha):
    layer = _layer(weight, torch.zeros(weight.shape[0], dtype=weight.dtype), A, B, alpha)
    layer.merge()
    return layer.base.weight.clone()


register(Exercise("8.4", "Merging LoRA", "merge_weight", points=2,
    reference=_merge, compare=tensor_close(atol=1e-9, rtol=1e-9),
    cases=lambda g: [(label, (w, A, B, alpha)) for label, (_, w, _, A, B, alpha) in (
        ("8 -> 4, rank 2, alpha 4", _lora_case(g, 8, 4, 2, 4.0, (1,))),
        ("32 -> 16, rank 8, alpha 16", _lora_case(g, 32, 16, 8, 16.0, (1,))),
        ("rank 1, alpha 3", _lora_case(g, 5, 7, 1, 3.0, (1,))))],
    hint="the merged weight is W + (alpha / r) B A, of W's shape (out, in); r is A's number of "
         "rows. Return a new tensor; leave W as it was.",
))


def _same_scores(expected: dict, got: Any) -> str | None:
    if not isinstance(got, dict):
        return f"expected a dict {{task: (right, total)}}, got {type(got).__name__}"
    if set(got) != set(expected):
        return f"expected the tasks {sorted(expected)}, got {sorted(got, key=str)}"
    for task, pair in expected.items():
        if not isinstance(got[task], (tuple, list)) or tuple(got[task]) != pair:
            return f"for {task!r} expected (right, total) = {pair}, got {got[task]!r}"
    return None


def _answers(g: torch.Generator) -> list[tuple[str, str, str]]:
    tasks, words = ("add", "first_word", "act"), ("7", "12", "king", "II", " king", "king.", "IV\n")
    out = []
    for _ in range(12):
        task = tasks[int(torch.randint(0, 3, (1,), generator=g))]
        given = words[int(torch.randint(0, len(words), (1,), generator=g))]
        expected = words[int(torch.randint(0, 4, (1,), generator=g))]
        out.append((task, given, expected))
    return out


register(Exercise("8.5", "Exact-match scoring", "score", points=2,
    reference=score_answers, compare=_same_scores,
    cases=lambda g: [("spaces around an answer", ([("add", " 12\n", "12"), ("add", "12.", "12")],)),
                     ("two tasks", ([("act", "II", "II"), ("first_word", "King", "king"),
                                     ("act", "IV", "II")],)),
                     ("twelve random answers", (_answers(g),))],
    hint="count, per task, the answers and those equal to the expected answer once white space is "
         "stripped from both ends of each (str.strip); nothing else is forgiven, not case nor a "
         "full stop. Return {task: (right, total)}.",
))
