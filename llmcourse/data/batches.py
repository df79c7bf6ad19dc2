"""From token ids to training batches: shards on disk, and (input, target) windows shifted by one.

Shards are memory-mapped: `load_shards` opens them without reading them, and a window reads only its
own T + 1 ids (from one shard, or from two where it straddles a boundary), widened to int64 one
window at a time. A corpus larger than memory trains with the memory of a batch.

>>> import torch
>>> x, y = WindowDataset(torch.arange(10), context_length=4)[0]
>>> x.tolist(), y.tolist()
([0, 1, 2, 3], [1, 2, 3, 4])
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

Tokens = Sequence[int] | np.ndarray | torch.Tensor


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds every id: uint16 up to 65,536 ids (GPT-2's 50,257
    fit), else uint32."""
    if vocab_size <= 0:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def write_shards(documents: Iterable[str], encode: Callable[[str], Sequence[int]], vocab_size: int,
                 out_dir: str | Path, separator: int | None = None,
                 shard_tokens: int = 1 << 22) -> list[Path]:
    """Encode `documents` into shards of at most `shard_tokens` ids (raw little-endian arrays) plus
    meta.json. `separator` (e.g. an end-of-text id) goes after every document so a window can see
    where one ends. Ids wait in compact arrays, so writing needs the memory of about one shard."""
    if shard_tokens <= 0:
        raise ValueError(f"shard_tokens must be positive, got {shard_tokens}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    shards: list[Path] = []
    pending: list[np.ndarray] = []
    n_pending = 0

    def flush(array: np.ndarray) -> None:
        path = out_dir / f"shard_{len(shards):05d}.bin"
        with tempfile.NamedTemporaryFile(dir=out_dir, delete=False) as tmp:  # no half-written shard
            array.astype(dtype.newbyteorder("<")).tofile(tmp)
        os.replace(tmp.name, path)
        shards.append(path)

    for text in documents:
        ids = np.asarray(encode(text), dtype=np.int64).ravel()  # checked before narrowing to dtype
        if separator is not None:
            ids = np.append(ids, separator)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            bad = int(ids.max()) if ids.max() >= vocab_size else int(ids.min())
            raise ValueError(f"an id {bad} is outside the vocabulary of {vocab_size}")
        pending.append(ids.astype(dtype))
        n_pending += ids.size
        while n_pending >= shard_tokens:
            flat = np.concatenate(pending)
            flush(flat[:shard_tokens])
            pending, n_pending = [flat[shard_tokens:]], flat.size - shard_tokens
    if n_pending:
        flush(np.concatenate(pending))
    if not shards:
        raise ValueError("no tokens: the documents were empty")
    meta = {"dtype": dtype.name, "vocab_size": vocab_size, "shards": [p.name for p in shards],
            "tokens": [int(p.stat().st_size // dtype.itemsize) for p in shards]}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return shards


class TokenShards:
    """The ids of several shard files as one read-only sequence. Each shard is memory-mapped;
    indexing reads only the ids asked for, and a slice that crosses a shard boundary is joined from
    its pieces.

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> encode = lambda text: [ord(c) - 97 for c in text]
    >>> _ = write_shards(["abcde", "fgh"], encode, 26, folder, shard_tokens=3)
    >>> tokens = load_shards(folder)
    >>> len(tokens), tokens.n_shards, tokens[2:5].tolist(), tokens[-1]
    (8, 3, [2, 3, 4], 7)
    """

    def __init__(self, paths: Sequence[str | Path], dtype: np.dtype | str,
                 sizes: Sequence[int]) -> None:
        self.paths = [Path(p) for p in paths]
        self.dtype = np.dtype(dtype)
        if not self.paths or len(self.paths) != len(sizes):
            raise ValueError(f"need one size per shard, got {len(self.paths)} paths and "
                             f"{len(sizes)} sizes")
        little_endian = self.dtype.newbyteorder("<")
        self._maps = [np.memmap(p, dtype=little_endian, mode="r") for p in self.paths]
        found = [m.size for m in self._maps]
        if found != list(sizes):
            raise ValueError(f"shard sizes {found} do not match the expected {list(sizes)} (a "
                             f"shard is truncated or replaced)")
        self._starts = np.cumsum([0] + found)  # shard k holds ids [starts[k], starts[k + 1])

    @property
    def n_shards(self) -> int:
        return len(self._maps)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("shards are sliced with step 1 only")
            return self._read(start, max(start, stop))
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"index with an int or a slice, not {type(index).__name__}")
        i = int(index) + len(self) if index < 0 else int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"token {index} of {len(self)}")
        return int(self._read(i, i + 1)[0])

    def _read(self, start: int, stop: int) -> np.ndarray:
        """ids[start:stop]: a view on the file within one shard, else its pieces joined."""
        k = int(np.searchsorted(self._starts, start, side="right")) - 1
        pieces = []
        while k < self.n_shards and self._starts[k] < stop:
            offset = self._starts[k]
            lo, hi = max(start, offset) - offset, min(stop, self._starts[k + 1]) - offset
            pieces.append(self._maps[k][lo:hi])
            k += 1
        if len(pieces) == 1:
            return pieces[0]
        return np.concatenate(pieces) if pieces else np.empty(0, self.dtype)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """All ids as one array: a view on the file for one shard, else a copy in memory (only for
        corpora that fit)."""
        array = self._read(0, len(self))
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        return f"TokenShards({len(self):,} ids of {self.dtype} in {self.n_shards} shards)"

    def __getstate__(self) -> dict:  # DataLoader workers reopen the files instead of copying ids
        return {"paths": self.paths, "dtype": self.dtype.str, "sizes": [m.size for m in self._maps]}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["paths"], state["dtype"], state["sizes"])


def load_shards(out_dir: str | Path) -> TokenShards:
    """The tokens of a shard directory, memory-mapped shard by shard: nothing is read until used."""
    out_dir = Path(out_dir)
    try:
        meta = json.loads((out_dir / "meta.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise ValueError(f"{out_dir} is not a shard directory (meta.json: {err})") from None
    paths = [out_dir / name for name in meta["shards"]]
    try:
        return TokenShards(paths, meta["dtype"], meta["tokens"])
    except ValueError as err:
        raise ValueError(f"{out_dir}: {err}") from None


def _as_tokens(tokens: Tokens | TokenShards) -> np.ndarray | torch.Tensor | TokenShards:
    """Shards, arrays, memory maps and tensors as they are; a Python list becomes an array once."""
    if isinstance(tokens, TokenShards):
        return tokens
    data = tokens if isinstance(tokens, (np.ndarray, torch.Tensor)) else np.asarray(tokens)
    if data.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(data.shape)}")
    return data


def _ids(tokens: np.ndarray | torch.Tensor | TokenShards, start: int, stop: int) -> torch.Tensor:
    """tokens[start:stop] as int64: only this slice is read and widened."""
    chunk = tokens[start:stop]
    if isinstance(chunk, torch.Tensor):
        return chunk.long()
    return torch.from_numpy(np.asarray(chunk).astype(np.int64))


class WindowDataset(Dataset):
    """Window i is tokens[i*stride : i*stride + T] as input and the same window one token later as
    target: at every position the model learns to predict the next token. stride = T gives
    non-overlapping windows. `tokens` may be a tensor, an array, a memory map or `TokenShards`; a
    window is read when it is asked for."""

    def __init__(self, tokens: Tokens | TokenShards, context_length: int,
                 stride: int | None = None) -> None:
        self.tokens = _as_tokens(tokens)
        self.T, self.stride = context_length, stride or context_length
        if context_length <= 0 or self.stride <= 0:
            raise ValueError("context_length and stride must be positive")
        if len(self.tokens) < context_length + 1:
            raise ValueError(f"{len(self.tokens)} tokens cannot fill one window of "
                             f"{context_length} plus its shifted target")

    def __len__(self) -> int:
        return (len(self.tokens) - self.T - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} of {len(self)}")
        start = i * self.stride
        chunk = _ids(self.tokens, start, start + self.T + 1)
        return chunk[:-1], chunk[1:]


def window_loader(tokens: Tokens | TokenShards, context_length: int, batch_size: int,
                  shuffle: bool = True, seed: int = 0, stride: int | None = None) -> DataLoader:
    """Batches of (B, T) inputs and targets, shuffled reproducibly."""
    return DataLoader(WindowDataset(tokens, context_length, stride), batch_size=batch_size,
                      shuffle=shuffle, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))


def random_batch(tokens: Tokens | TokenShards, batch_size: int, context_length: int,
                 generator: torch.Generator | None = None,
                 rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """B windows at random offsets (nanoGPT's sampler): no epochs, every offset equally likely.
    Only the B windows are read. `rows` picks some of the B windows: the B offsets are drawn all
    the same, so processes that share the generator's seed read disjoint parts of one batch (the
    distributed sampler of data parallelism)."""
    tokens = _as_tokens(tokens)
    n = len(tokens) - context_length - 1
    if n < 0:
        raise ValueError(f"{len(tokens)} tokens are too few for a window of {context_length}")
    starts = torch.randint(0, n + 1, (batch_size,), generator=generator)
    if rows is not None:
        starts = starts[rows]
    windows = torch.stack([_ids(tokens, s, s + context_length + 1) for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]
