"""Normalising text and splitting a corpus into train and validation sets by document.

>>> normalize_text("Caf\\u0065\\u0301  \\r\\nline\\x07 two   \\n\\n\\n\\n\\nend")
'Café\\nline two\\n\\nend'
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Sequence

from llmcourse.data.corpus import Corpus, Document

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """NFC-compose characters (so "é" is one code point however it was typed), use \\n line ends,
    drop control characters, trailing spaces and runs of more than one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_RUNS.sub("\n\n", text).strip()


def split_documents(docs: Sequence[Document], val_fraction: float = 0.1,
                    salt: str = "llmcourse") -> tuple[list[Document], list[Document]]:
    """Train and validation documents. Each document goes wholly to one side, chosen by a hash of
    its name, so the split is the same on every machine and when documents are added, and no text
    of a validation document is trained on."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(docs) < 2:
        raise ValueError(f"need at least 2 documents to split, got {len(docs)}")
    names = [d.name for d in docs]
    if len(set(names)) != len(names):
        raise ValueError("document names must be unique: the split is decided by name")

    def bucket(name: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "big") / 2**64

    val = [d for d in docs if bucket(d.name) < val_fraction]
    if not val:  # a small corpus can miss the fraction entirely: hold out the nearest document
        val = [min(docs, key=lambda d: bucket(d.name))]
    train = [d for d in docs if d not in val]
    return train, val


def clean_split(corpus: Corpus, val_fraction: float = 0.1) -> tuple[list[Document], list[Document]]:
    """The corpus's documents, normalised, then split by document into train and validation
    (chapter 2's recipe, which every later chapter starts from).

    >>> from llmcourse.data.corpus import load_corpus
    >>> train, val = clean_split(load_corpus("tiny"), 0.3)
    >>> len(train) + len(val), not {d.name for d in train} & {d.name for d in val}
    (4, True)
    """
    docs = [Document(d.name, normalize_text(d.text)) for d in corpus.documents]
    return split_documents(docs, val_fraction)
