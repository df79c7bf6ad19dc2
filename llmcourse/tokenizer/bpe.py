"""A byte-level BPE tokenizer: encode, decode and special tokens, with tiktoken's semantics.

A tokenizer is a table of *mergeable ranks* (token bytes -> id, as in tiktoken and OpenAI's files) plus special
tokens. Encoding splits text with the pre-tokenization pattern, then merges each chunk's bytes: repeatedly join the
adjacent pair whose joined bytes have the lowest rank, until no joined pair is in the table. That is exactly
tiktoken's algorithm, written in Python, so GPT-2's ranks give GPT-2's ids.

>>> tok = Tokenizer.train("the cat sat on the mat. the cat ate.", vocab_size=270)
>>> ids = tok.encode("the cat")
>>> tok.decode(ids)
'the cat'
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Literal

import regex

from llmcourse.tokenizer.pretokenize import GPT2_PATTERN, compile_pattern
from llmcourse.tokenizer.training import train_bpe

AllOr = Literal["all"] | Collection[str]


def merge_chunk(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Ids of one pre-tokenized chunk: merge the lowest-ranked adjacent pair until none is mergeable.

    >>> merge_chunk(b"abc", {b"a": 0, b"b": 1, b"c": 2, b"bc": 3, b"abc": 4})
    [4]
    """
    parts = [piece[i:i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best_rank, best_i = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_i = rank, i
        if best_rank is None:
            break
        parts[best_i:best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return [ranks[p] for p in parts]


class Tokenizer:
    def __init__(self, ranks: dict[bytes, int], special_tokens: dict[str, int] | None = None,
                 pattern: str = GPT2_PATTERN, name: str = "bpe") -> None:
        special_tokens = dict(special_tokens or {})
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(f"ranks must contain every single byte (byte-level BPE); missing {missing[:8]}")
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise ValueError("ranks must be the ids 0..n-1, each used once")
        clash = [s for s, i in special_tokens.items() if i in set(ranks.values())]
        if clash:
            raise ValueError(f"special token ids collide with ordinary tokens: {clash}")
        self.name, self.pattern = name, pattern
        self.ranks = ranks
        self.special_tokens = special_tokens
        self._decoder = {i: t for t, i in ranks.items()} | {i: s.encode() for s, i in special_tokens.items()}
        self._split = compile_pattern(pattern)
        self._special_re = (regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len,
                                                                                      reverse=True)))
                            if special_tokens else None)
        self._cache: dict[bytes, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Collection[str] = (), pattern: str = GPT2_PATTERN,
              name: str = "bpe") -> "Tokenizer":
        """Train on `text`; special tokens take the last ids, after the learned merges."""
        ranks = train_bpe(text, vocab_size, pattern, n_special=len(special_tokens))
        return cls(ranks, {s: len(ranks) + i for i, s in enumerate(special_tokens)}, pattern, name)

    @property
    def n_vocab(self) -> int:
        return max(self._decoder) + 1

    # --- encoding ---------------------------------------------------------------------------------------------------
    def _encode_ordinary_bytes(self, data: bytes) -> list[int]:
        # split on text decoded with surrogateescape, so bytes that are not UTF-8 survive the regex and come back
        text = data.decode("utf-8", errors="surrogateescape")
        ids: list[int] = []
        for chunk in self._split.findall(text):
            piece = chunk.encode("utf-8", errors="surrogateescape")
            cached = self._cache.get(piece)
            if cached is None:
                cached = self.ranks.get(piece)
                cached = [cached] if cached is not None else merge_chunk(piece, self.ranks)
                if len(self._cache) < 100_000:
                    self._cache[piece] = cached
            ids.extend(cached)
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of `text`, treating special-token strings as ordinary text."""
        return self._encode_ordinary_bytes(text.encode("utf-8", errors="surrogatepass"))

    def encode(self, text: str, allowed_special: AllOr = (), disallowed_special: AllOr = "all") -> list[int]:
        """Ids of `text`. As in tiktoken, a special-token string in the text is an error unless it is allowed
        (then it becomes its special id) or explicitly not disallowed (then it is encoded as ordinary text)."""
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        disallowed = (set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special))
        if disallowed and self._special_re is not None:
            for match in self._special_re.finditer(text):
                if match.group() in disallowed:
                    raise ValueError(
                        f"the text contains the special token {match.group()!r} at position {match.start()}. Pass "
                        f"allowed_special={{{match.group()!r}}} to encode it as a special token, or "
                        f"disallowed_special=() to encode it as ordinary text.")
        if not allowed:
            return self.encode_ordinary(text)
        ids, start = [], 0
        for match in self._special_re.finditer(text):
            if match.group() in allowed:
                ids += self.encode_ordinary(text[start:match.start()])
                ids.append(self.special_tokens[match.group()])
                start = match.end()
        return ids + self.encode_ordinary(text[start:])

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ids of arbitrary bytes, invalid UTF-8 included: decode_bytes(encode_bytes(b)) == b for every b."""
        return self._encode_ordinary_bytes(data)

    # --- decoding ---------------------------------------------------------------------------------------------------
    def decode_bytes(self, ids: list[int]) -> bytes:
        try:
            return b"".join(self._decoder[i] for i in ids)
        except KeyError:
            bad = [i for i in ids if i not in self._decoder][:5]
            raise ValueError(f"ids not in the vocabulary (size {self.n_vocab}): {bad}") from None

    def decode(self, ids: list[int], errors: str = "replace") -> str:
        """Text of `ids`. A token can end inside a multi-byte character, so a slice of ids may not be valid UTF-8:
        by default such bytes become U+FFFD, as in tiktoken. errors="strict" raises instead, and "surrogatepass"
        returns exactly the text that was encoded, lone surrogates included."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        return self.decode_bytes([token_id])

    def to_tiktoken(self):
        """The same tokenizer as a `tiktoken.Encoding`: our ranks, tiktoken's Rust speed."""
        import tiktoken

        return tiktoken.Encoding(self.name, pat_str=self.pattern, mergeable_ranks=self.ranks,
                                 special_tokens=self.special_tokens)
