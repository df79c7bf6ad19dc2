"""From (prompt, response) token ids to training batches: the loss only on the response, padding,
and packing.

An example is the prompt's ids followed by the response's. The model still reads every token, but
only the response's tokens are targets: the prompt's targets are IGNORE (-100), which
`F.cross_entropy` leaves out of the mean. The model learns to answer, not to write questions.

    >>> ex = encode_example([5, 6, 7], [8, 9], context_length=8)
    >>> ex.inputs, ex.targets        # predict 8 after 7, then 9 after 8; nothing for the prompt
    ([5, 6, 7, 8], [-100, -100, 8, 9])

**Padding.** Sequences of a batch have different lengths; `pad_batch` fills each row on the right
with a pad id whose targets are IGNORE. A causal model never lets a real token attend to a later
position, so right padding changes no real token's output, and the loss, a mean over the real
targets of the whole batch, is the same as over the unpadded examples (tested).

**Packing.** `pack_examples` puts several examples in one row instead, with no padding to compute.
Each keeps its own positions (counted from 0) and a mask that hides the other examples of its row,
so a packed row computes the same losses as its examples apart.

**Too long.** An example longer than the context is refused with its index and lengths
(`too_long="error"`, the default), or its prompt is cut from the left, keeping the end of the
prompt (where the template puts the question) and the whole response (`"truncate_prompt"`).
Nothing is cut silently: `Example.truncated` counts the tokens dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from llmcourse.model.gpt import IGNORE  # the model's loss leaves these targets out

TooLong = Literal["error", "truncate_prompt"]


@dataclass(frozen=True)
class Example:
    inputs: list[int]  # what the model reads: prompt + response, less the last token
    targets: list[int]  # the next token at each position; IGNORE inside the prompt
    truncated: int = 0  # prompt tokens cut to fit the context


@dataclass(frozen=True)
class Batch:
    ids: torch.Tensor  # (B, T)
    targets: torch.Tensor  # (B, T), IGNORE where nothing is learnt
    mask: torch.Tensor  # bool, (B, 1, 1, T) padded or (B, 1, T, T) packed; the model adds causality
    positions: torch.Tensor  # (B, T)
    reference: torch.Tensor | None = None  # (B,) DPO: the reference's log-probability of each row


def encode_example(prompt: Sequence[int], response: Sequence[int], context_length: int,
                   too_long: TooLong = "error", index: int | None = None) -> Example:
    """One example's inputs and masked targets. index: its place in the data set, for errors."""
    where = "" if index is None else f"example {index}: "
    if not response:
        raise ValueError(f"{where}the response is empty: there is nothing to learn")
    if not prompt:
        raise ValueError(f"{where}the prompt is empty: the template gives every example one")
    if too_long not in ("error", "truncate_prompt"):
        raise ValueError(f"too_long must be 'error' or 'truncate_prompt', got {too_long!r}")
    excess = len(prompt) + len(response) - 1 - context_length  # inputs drop the last token
    cut = 0
    if excess > 0:
        if too_long == "error":
            raise ValueError(
                f"{where}{len(prompt)} prompt + {len(response)} response tokens do not fit a "
                f"context of {context_length}: shorten it, or pass too_long='truncate_prompt'")
        if excess >= len(prompt):
            raise ValueError(f"{where}the response alone ({len(response)} tokens) does not fit a "
                             f"context of {context_length}, even without the prompt")
        prompt, cut = prompt[excess:], excess
    ids = list(prompt) + list(response)
    targets = [IGNORE] * (len(prompt) - 1) + list(response)
    return Example(ids[:-1], targets, cut)


def pad_batch(examples: Sequence[Example], pad_id: int) -> Batch:
    """Right-pad to the longest example. pad_id: any id the model knows (its targets are IGNORE)."""
    if not examples:
        raise ValueError("an empty batch")
    T = max(len(e.inputs) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    targets = torch.full((len(examples), T), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e.inputs)] = torch.tensor(e.inputs)
        targets[row, : len(e.targets)] = torch.tensor(e.targets)
    lengths = torch.tensor([len(e.inputs) for e in examples])
    real = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    positions = torch.arange(T).expand(len(examples), T)
    return Batch(ids, targets, real[:, None, None, :], positions)


def pack_examples(examples: Sequence[Example], context_length: int, pad_id: int) -> Batch:
    """Fill rows of `context_length` with whole examples, in order (a new row when the next one
    does not fit); each attends only to itself and counts its positions from 0."""
    rows: list[list[Example]] = [[]]
    for e in examples:
        if len(e.inputs) > context_length:
            raise ValueError(f"an example of {len(e.inputs)} tokens does not fit a context of "
                             f"{context_length}")
        if sum(len(x.inputs) for x in rows[-1]) + len(e.inputs) > context_length:
            rows.append([])
        rows[-1].append(e)
    B, T = len(rows), context_length
    ids = torch.full((B, T), pad_id, dtype=torch.long)
    targets = torch.full((B, T), IGNORE, dtype=torch.long)
    document = torch.full((B, T), -1, dtype=torch.long)  # which example each position holds
    positions = torch.zeros((B, T), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for k, e in enumerate(row):
            end = start + len(e.inputs)
            ids[r, start:end] = torch.tensor(e.inputs)
            targets[r, start:end] = torch.tensor(e.targets)
            document[r, start:end] = k
            positions[r, start:end] = torch.arange(end - start)
            start = end
    # a query sees a key of its own example only (pads: only pads, so no row of the mask is empty)
    mask = document[:, :, None] == document[:, None, :]  # (B, T, T)
    return Batch(ids, targets, mask[:, None], positions)
