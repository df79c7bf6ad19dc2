"""From token ids to training batches: shards on disk, and (input, target) windows shifted by one token.

>>> import torch
>>> x, y = WindowDataset(torch.arange(10), context_length=4)[0]
>>> x.tolist(), y.tolist()
([0, 1, 2, 3], [1, 2, 3, 4])
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id: uint16 up to 65,536 ids (GPT-2's 50,257 fit), else uint32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def write_shards(documents: Iterable[str], encode: Callable[[str], list[int]], vocab_size: int, out_dir: str | Path,
                 separator: int | None = None, shard_tokens: int = 1 << 22) -> list[Path]:
    """Encode `documents` into shards of at most `shard_tokens` ids (raw little-endian arrays) plus meta.json.
    `separator` (e.g. an end-of-text id) goes after every document so a window can see where one ends."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    shards, buffer = [], []

    def flush() -> None:
        array = np.asarray(buffer, dtype=dtype)
        if array.size and (array.max() >= vocab_size):
            raise ValueError(f"an id {int(array.max())} is outside the vocabulary of {vocab_size}")
        path = out_dir / f"shard_{len(shards):05d}.bin"
        with tempfile.NamedTemporaryFile(dir=out_dir, delete=False) as tmp:  # atomic: no half-written shard
            array.astype(dtype.newbyteorder("<")).tofile(tmp)
        os.replace(tmp.name, path)
        shards.append(path)
        buffer.clear()

    for text in documents:
        buffer.extend(encode(text))
        if separator is not None:
            buffer.append(separator)
        while len(buffer) >= shard_tokens:
            rest = buffer[shard_tokens:]
            del buffer[shard_tokens:]
            flush()
            buffer.extend(rest)
    if buffer:
        flush()
    if not shards:
        raise ValueError("no tokens: the documents were empty")
    meta = {"dtype": dtype.name, "vocab_size": vocab_size, "shards": [p.name for p in shards],
            "tokens": [int(p.stat().st_size // dtype.itemsize) for p in shards]}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return shards


def load_shards(out_dir: str | Path) -> np.ndarray:
    """All tokens of a shard directory as one array; each shard is memory-mapped, so nothing is read until used
    (one shard: the memmap itself, no copy)."""
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise ValueError(f"{out_dir} is not a shard directory (meta.json: {err})") from None
    maps = [np.memmap(out_dir / name, dtype=np.dtype(meta["dtype"]).newbyteorder("<"), mode="r")
            for name in meta["shards"]]
    if [m.size for m in maps] != meta["tokens"]:
        raise ValueError(f"{out_dir}: shard sizes do not match meta.json (a shard is truncated or replaced)")
    return maps[0] if len(maps) == 1 else np.concatenate(maps)


class WindowDataset(Dataset):
    """Window i is tokens[i*stride : i*stride + T] as input and the same window one token later as target: at every
    position the model learns to predict the next token. stride = T gives non-overlapping windows."""

    def __init__(self, tokens: Sequence[int] | np.ndarray | torch.Tensor, context_length: int,
                 stride: int | None = None) -> None:
        self.tokens = torch.as_tensor(np.asarray(tokens).astype(np.int64))
        self.T, self.stride = context_length, stride or context_length
        if context_length <= 0 or self.stride <= 0:
            raise ValueError("context_length and stride must be positive")
        if len(self.tokens) < context_length + 1:
            raise ValueError(f"{len(self.tokens)} tokens cannot fill one window of {context_length} plus its "
                             f"shifted target")

    def __len__(self) -> int:
        return (len(self.tokens) - self.T - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} of {len(self)}")
        start = i * self.stride
        chunk = self.tokens[start:start + self.T + 1]
        return chunk[:-1], chunk[1:]


def window_loader(tokens: Sequence[int] | np.ndarray, context_length: int, batch_size: int, shuffle: bool = True,
                  seed: int = 0, stride: int | None = None) -> DataLoader:
    """Batches of (B, T) inputs and targets, shuffled reproducibly."""
    return DataLoader(WindowDataset(tokens, context_length, stride), batch_size=batch_size, shuffle=shuffle,
                      drop_last=True, generator=torch.Generator().manual_seed(seed))


def random_batch(tokens: np.ndarray | torch.Tensor, batch_size: int, context_length: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows at random offsets (nanoGPT's sampler): no epochs, every offset equally likely."""
    n = len(tokens) - context_length - 1
    if n < 0:
        raise ValueError(f"{len(tokens)} tokens are too few for a window of {context_length}")
    starts = torch.randint(0, n + 1, (batch_size,), generator=generator)
    windows = torch.stack([torch.as_tensor(np.asarray(tokens[s:s + context_length + 1]).astype(np.int64))
                           for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]
