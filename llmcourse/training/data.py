"""The pretraining data: a corpus cleaned and split by document, a BPE tokenizer trained on the training side, and
both sides encoded into token arrays, each document followed by the end-of-text id.

Bits per byte needs the bytes behind the validation tokens: a loss in nats per token says little across
tokenizers (a bigger vocabulary packs more text into each token, so its per-token loss is higher for the same
model quality), while bits per UTF-8 byte of the same text compares any two runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmcourse.cleaning import clean_split
from llmcourse.corpus import load_corpus
from llmcourse.tokenizer import Tokenizer

END_OF_TEXT = "<|endoftext|>"


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
        """UTF-8 bytes of validation text per validation token (end-of-text ids count as tokens of no text)."""
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


def prepare_data(corpus: str, vocab_size: int, tokenizer: Tokenizer | None = None) -> PretrainingData:
    """Clean and split `corpus` (chapter 2's recipe), train a `vocab_size` tokenizer (end-of-text included) on the
    training documents joined by end-of-text (or use `tokenizer`), and encode both sides."""
    train_docs, val_docs = clean_split(load_corpus(corpus))
    train_texts, val_texts = [d.text for d in train_docs], [d.text for d in val_docs]
    if tokenizer is None:
        tokenizer = Tokenizer.train(END_OF_TEXT.join(train_texts), vocab_size, special_tokens=[END_OF_TEXT],
                                    name=f"{corpus}-{vocab_size}")
    elif END_OF_TEXT not in tokenizer.special_tokens:
        raise ValueError(f"the tokenizer needs the {END_OF_TEXT} special token to separate documents")
    return PretrainingData(tokenizer, encode_documents(tokenizer, train_texts),
                           encode_documents(tokenizer, val_texts), train_texts, val_texts)
