"""The pretraining data: a corpus cleaned and split by document, a BPE tokenizer trained on the
training side, and both sides encoded into token arrays, each document followed by the end-of-text
id.

Bits per byte needs the bytes behind the validation tokens: a loss in nats per token says little
across tokenizers (a bigger vocabulary packs more text into each token, so its per-token loss is
higher for the same model quality), while bits per UTF-8 byte of the same text compares any two
runs.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmcourse.data.batches import random_batch
from llmcourse.data.cleaning import clean_split
from llmcourse.data.corpus import load_corpus
from llmcourse.tokenizer import END_OF_TEXT, Tokenizer, load_tokenizer, save_tokenizer

# a batch on the device: ids, targets and the model's other arguments
Batch = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class PretrainingData:
    tokenizer: Tokenizer
    train_ids: np.ndarray  # uint16 or uint32
    val_ids: np.ndarray
    train_texts: list[str]
    val_texts: list[str]

    @property
    def eot_id(self) -> int:
        return self.tokenizer.special_tokens[END_OF_TEXT]

    @property
    def val_bytes_per_token(self) -> float:
        """UTF-8 bytes of validation text per validation token (end-of-text ids count as tokens of
        no text)."""
        return sum(len(t.encode("utf-8")) for t in self.val_texts) / len(self.val_ids)


def encode_documents(tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    """The documents' ids in one array, each document followed by the end-of-text id.

    >>> tok = Tokenizer.train("ab ab ab", 258, special_tokens=[END_OF_TEXT])
    >>> encode_documents(tok, ["ab", "b"]).tolist()
    [256, 257, 98, 257]
    """
    encoding, eot = tokenizer.to_tiktoken(), tokenizer.special_tokens[END_OF_TEXT]
    ids: list[int] = []
    for text in texts:
        ids += encoding.encode_ordinary(text)
        ids.append(eot)
    return np.asarray(ids, dtype=np.uint16 if tokenizer.n_vocab <= 1 << 16 else np.uint32)


# Tokenizers that the package ships, already trained: BPE training is deterministic, so a file
# trained from the same text is the tokenizer that training would make (tests/test_tokenizer.py
# trains each again and compares).
SHIPPED = Path(__file__).resolve().parents[1] / "tokenizer" / "shipped"


def shipped_path(corpus: str, vocab_size: int, text: str) -> Path:
    """Where the package ships the `vocab_size` tokenizer trained on `text`: the name holds the
    text's sha256, so a changed corpus, cleaning or split never finds a stale file."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return SHIPPED / f"{corpus}-{vocab_size}-{digest}.json"


def train_tokenizer(corpus: str, vocab_size: int, train_texts: list[str]) -> Tokenizer:
    """The `vocab_size` tokenizer (end-of-text included) trained on the training documents joined
    by end-of-text: the shipped file where the package has one for this text (it saves seconds on
    every run), else trained now."""
    text = END_OF_TEXT.join(train_texts)
    path = shipped_path(corpus, vocab_size, text)
    if path.exists():
        return load_tokenizer(path)
    name = f"{corpus}-{vocab_size}"
    return Tokenizer.train(text, vocab_size, special_tokens=[END_OF_TEXT], name=name)


def prepare_data(corpus: str, vocab_size: int,
                 tokenizer: Tokenizer | None = None) -> PretrainingData:
    """Clean and split `corpus` (chapter 2's recipe), train a `vocab_size` tokenizer on the training
    documents (`train_tokenizer`), or use `tokenizer`, and encode both sides."""
    train_docs, val_docs = clean_split(load_corpus(corpus))
    train_texts, val_texts = [d.text for d in train_docs], [d.text for d in val_docs]
    if tokenizer is None:
        tokenizer = train_tokenizer(corpus, vocab_size, train_texts)
    elif END_OF_TEXT not in tokenizer.special_tokens:
        raise ValueError(f"the tokenizer needs the {END_OF_TEXT} special token to separate "
                         "documents")
    return PretrainingData(tokenizer, encode_documents(tokenizer, train_texts),
                           encode_documents(tokenizer, val_texts), train_texts, val_texts)


def ship_tokenizer(corpus: str, vocab_size: int) -> Path:
    """Train the `vocab_size` tokenizer of `corpus`'s training documents and write it where
    train_tokenizer finds it (`python -m llmcourse.training.data shakespeare 2048`, after a change
    to the corpus, its cleaning or its split). Files for older texts are removed."""
    train_docs, _ = clean_split(load_corpus(corpus))
    texts = [d.text for d in train_docs]
    path = shipped_path(corpus, vocab_size, END_OF_TEXT.join(texts))
    for old in SHIPPED.glob(f"{corpus}-{vocab_size}-*.json"):
        old.unlink()
    trained = Tokenizer.train(END_OF_TEXT.join(texts), vocab_size, special_tokens=[END_OF_TEXT],
                              name=f"{corpus}-{vocab_size}")
    save_tokenizer(trained, path)
    return path


if __name__ == "__main__":
    import sys

    print(ship_tokenizer(sys.argv[1], int(sys.argv[2])))


def sample_batch(data: Any, batch_size: int, context_length: int, generator: torch.Generator,
                 rows: slice | None, device: torch.device) -> Batch:
    """(ids, targets, the model's other arguments) on `device`: windows at random offsets of a
    token array (pretraining), or examples from a source with a `sample` method (fine-tuning:
    padded or packed, with their attention mask and positions; DPO: pairs with their reference
    log-probabilities). rows: this process's rows of the batch (all where None)."""
    if not hasattr(data, "sample"):
        x, y = random_batch(data, batch_size, context_length, generator, rows)
        return x.to(device), y.to(device), {}
    batch = data.sample(batch_size, generator, rows)
    extra = {"mask": batch.mask.to(device), "positions": batch.positions.to(device)}
    if getattr(batch, "reference", None) is not None:  # preference pairs (DPO)
        extra["reference"] = batch.reference.to(device)
    return batch.ids.to(device), batch.targets.to(device), extra
