"""A character-level vocabulary: the simplest tokenizer, used before the BPE chapter.

>>> vocab = CharVocab.from_text("hello")
>>> vocab.chars, vocab.encode("hole")
('ehlo', [1, 3, 2, 0])
>>> vocab.decode([1, 0, 2])
'hel'
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CharVocab:
    chars: str  # sorted, unique; a character's id is its index

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown[:10]!r}")
        return [index[c] for c in text]

    def encode_tensor(self, text: str) -> torch.Tensor:
        return torch.tensor(self.encode(text), dtype=torch.long)

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in ids if not 0 <= i < len(self.chars)]
        if bad:
            raise ValueError(f"ids outside the vocabulary of size {len(self.chars)}: {bad[:10]}")
        return "".join(self.chars[i] for i in ids)
