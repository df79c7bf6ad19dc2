"""A byte-level BPE tokenizer: encode, decode and special tokens, with tiktoken's semantics.

A tokenizer is a table of *mergeable ranks* (token bytes -> id, as in tiktoken and OpenAI's
files) plus special tokens. Encoding splits text with the pre-tokenization pattern, then merges
each chunk's bytes: repeatedly join the adjacent pair whose joined bytes have the lowest rank,
until no joined pair is in the table. That is exactly tiktoken's algorithm, written in Python, so
GPT-2's ranks give GPT-2's ids.

>>> tok = Tokenizer.train("the cat sat on the mat. the cat ate.", vocab_size=270)
>>> ids = tok.encode("the cat")
>>> tok.decode(ids)
'the cat'

A file too large for memory is encoded as a stream of lines (or of any strings):
`encode_iterable` yields the ids of `encode` on the joined text while it holds about BLOCK
characters at a time.

>>> lines = ["the cat\\n", "\\n", "  sat on the mat.\\n"]
>>> list(tok.encode_iterable(lines)) == tok.encode("".join(lines))
True
"""
from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Iterator
from typing import Literal

import regex

from llmcourse.tokenizer.pretokenize import GPT2_PATTERN, compile_pattern
from llmcourse.tokenizer.training import check_special_tokens, special_pattern, train_bpe

AllOr = Literal["all"] | Collection[str]
# GPT-2's end-of-text token, which the course's tokenizers share: it separates documents in
# training, and a model reads it as "a new text starts here"
END_OF_TEXT = "<|endoftext|>"
LOOKAHEAD = 16  # characters a pattern may read past the end of a match (GPT-2's reads 2)
BLOCK = 1 << 16  # characters encode_iterable gathers before it encodes them


def _escape_surrogates(text: str) -> str:
    # As encode_ordinary does: lone surrogates become the escapes of their UTF-8 bytes. It works
    # code point by code point, so a stream may apply it piece by piece.
    return text.encode("utf-8", errors="surrogatepass").decode("utf-8", errors="surrogateescape")


def merge_chunk(piece: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Ids of one pre-tokenized chunk: merge the lowest-ranked adjacent pair until none is
    mergeable.

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
        check_special_tokens(list(special_tokens))
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ValueError(f"ranks must contain every single byte (byte-level BPE); "
                             f"missing {missing[:8]}")
        if sorted(ranks.values()) != list(range(len(ranks))):
            raise ValueError("ranks must be the ids 0..n-1, each used once")
        clash = [s for s, i in special_tokens.items() if i in set(ranks.values())]
        if clash:
            raise ValueError(f"special token ids collide with ordinary tokens: {clash}")
        self.name, self.pattern = name, pattern
        self.ranks = ranks
        self.special_tokens = special_tokens
        self._decoder = ({i: t for t, i in ranks.items()}
                         | {i: s.encode() for s, i in special_tokens.items()})
        self._split = compile_pattern(pattern)
        self._special_re = special_pattern(special_tokens)
        self._cache: dict[bytes, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, special_tokens: Collection[str] = (),
              pattern: str = GPT2_PATTERN, name: str = "bpe") -> Tokenizer:
        """Train on `text` (see `train_bpe`). Special tokens cut the text before
        pre-tokenization, so no merge learns a piece of one, and take the last ids."""
        check_special_tokens(special_tokens)
        special_tokens = list(special_tokens)
        ranks = train_bpe(text, vocab_size, pattern, special_tokens)
        return cls(ranks, {s: len(ranks) + i for i, s in enumerate(special_tokens)}, pattern, name)

    @property
    def n_vocab(self) -> int:
        return max(self._decoder) + 1

    # --- encoding -------------------------------------------------------------------------------
    def _encode_chunk(self, chunk: str) -> list[int]:
        piece = chunk.encode("utf-8", errors="surrogateescape")
        cached = self._cache.get(piece)
        if cached is None:
            cached = self.ranks.get(piece)
            cached = [cached] if cached is not None else merge_chunk(piece, self.ranks)
            if len(self._cache) < 100_000:
                self._cache[piece] = cached
        return cached

    def _encode_ordinary_bytes(self, data: bytes) -> list[int]:
        # split text decoded with surrogateescape: bytes that are not UTF-8 survive the regex
        text = data.decode("utf-8", errors="surrogateescape")
        ids: list[int] = []
        for chunk in self._split.findall(text):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def _special_sets(self, allowed_special: AllOr,
                      disallowed_special: AllOr) -> tuple[set[str], set[str]]:
        every = set(self.special_tokens)
        allowed = every if allowed_special == "all" else set(allowed_special)
        unknown = allowed - every
        if unknown:
            raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        disallowed = every - allowed if disallowed_special == "all" else set(disallowed_special)
        return allowed, disallowed

    @staticmethod
    def _disallowed_error(token: str, position: int) -> ValueError:
        return ValueError(
            f"the text contains the special token {token!r} at position {position}. Pass "
            f"allowed_special={{{token!r}}} to encode it as a special token, or "
            f"disallowed_special=() to encode it as ordinary text.")

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of `text`, treating special-token strings as ordinary text."""
        return self._encode_ordinary_bytes(text.encode("utf-8", errors="surrogatepass"))

    def encode(self, text: str, allowed_special: AllOr = (),
               disallowed_special: AllOr = "all") -> list[int]:
        """Ids of `text`. As in tiktoken, a special-token string in the text is an error unless
        it is allowed (then it becomes its special id) or explicitly not disallowed (then it is
        encoded as ordinary text)."""
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        if disallowed and self._special_re is not None:
            for match in self._special_re.finditer(text):
                if match.group() in disallowed:
                    raise self._disallowed_error(match.group(), match.start())
        if not allowed:
            return self.encode_ordinary(text)
        ids, start = [], 0
        for match in self._special_re.finditer(text):
            if match.group() in allowed:
                ids += self.encode_ordinary(text[start:match.start()])
                ids.append(self.special_tokens[match.group()])
                start = match.end()
        return ids + self.encode_ordinary(text[start:])

    def encode_iterable(self, texts: Iterable[str], allowed_special: AllOr = (),
                        disallowed_special: AllOr = "all") -> Iterator[int]:
        """Ids of the concatenation of `texts` (e.g. the lines of a file opened in text mode),
        yielded as they are found: exactly `encode("".join(texts), ...)`, in memory that does not
        grow with the input. It gathers about BLOCK characters, encodes what more text cannot
        change, and keeps the rest for the next block: the last pre-token (a "\\n" followed by
        "\\n" is one chunk), pre-tokens ending within LOOKAHEAD characters of it, and a tail
        that may begin a special token. That is exact for patterns that read at most LOOKAHEAD
        characters past a match that does not run to the end of the text, as GPT-2's and
        cl100k's do. A disallowed special token raises ValueError when the stream reaches it.

        >>> tok = Tokenizer.train("ab ab ab", vocab_size=260, special_tokens=["<|end|>"])
        >>> pieces = ["a", "b a", "b<|e", "nd|>ab"]
        >>> list(tok.encode_iterable(pieces, "all")) == tok.encode("ab ab<|end|>ab", "all")
        True
        """
        allowed, disallowed = self._special_sets(allowed_special, disallowed_special)
        special_re = self._special_re if (allowed or disallowed) else None
        hold = max(map(len, self.special_tokens)) - 1 if special_re is not None else 0
        buffer, search = "", 0  # text not yet encoded; no special token starts before `search`
        position = 0  # of buffer[0] in the stream, for error messages
        pending: list[str] = []  # strings gathered until they make a block
        pending_length = 0
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"encode_iterable takes strings, got {type(text).__name__}: open "
                                f"files in text mode, or use encode_bytes for bytes")
            pending.append(text)
            pending_length += len(text)
            if pending_length < BLOCK:
                continue
            buffer += _escape_surrogates("".join(pending))
            pending.clear()
            pending_length = 0
            done, search = yield from self._encode_settled(
                buffer, search, hold, special_re, allowed, disallowed, position, final=False)
            position += done
            buffer, search = buffer[done:], search - done
        buffer += _escape_surrogates("".join(pending))
        yield from self._encode_settled(buffer, search, hold, special_re, allowed, disallowed,
                                        position, final=True)

    def _encode_settled(self, buffer: str, search: int, hold: int,
                        special_re: regex.Pattern | None, allowed: set[str], disallowed: set[str],
                        position: int, final: bool) -> Generator[int, None, tuple[int, int]]:
        """Yield the ids of the start of `buffer` that more text cannot change; return where they
        end and the new `search`. With `final` there is no more text: yield them all."""
        pos = 0
        while special_re is not None:
            match = special_re.search(buffer, search)
            # settled when the longest special token starting there would fit in the buffer
            if match is None or not (final or match.start() + hold < len(buffer)):
                if not final:
                    # a special token starting before here would lie whole in the buffer
                    search = max(search, len(buffer) - hold)
                break
            token = match.group()
            if token in disallowed:
                raise self._disallowed_error(token, position + match.start())
            search = match.end()
            if token in allowed:  # it ends the ordinary text before it
                for chunk in self._split.findall(buffer[pos:match.start()]):
                    yield from self._encode_chunk(chunk)
                yield self.special_tokens[token]
                pos = search
        end = len(buffer) if final else max(pos, len(buffer) - hold)
        # A pre-token is settled when it ends LOOKAHEAD characters before the end of the text seen:
        # a pattern may look past a match (GPT-2's tries "'ll" before it settles for "'"), and
        # the last match may go on in the next block.
        settled = end if final else end - LOOKAHEAD
        start = pos
        for match in self._split.finditer(buffer[start:end]):
            if start + match.end() > settled:
                break
            yield from self._encode_chunk(match.group())
            pos = start + match.end()
        return (end if final else pos), search

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ids of arbitrary bytes, invalid UTF-8 included:
        decode_bytes(encode_bytes(b)) == b for every b."""
        return self._encode_ordinary_bytes(data)

    # --- decoding -------------------------------------------------------------------------------
    def decode_bytes(self, ids: list[int]) -> bytes:
        try:
            return b"".join(self._decoder[i] for i in ids)
        except KeyError:
            bad = [i for i in ids if i not in self._decoder][:5]
            raise ValueError(f"ids not in the vocabulary (size {self.n_vocab}): {bad}") from None

    def decode(self, ids: list[int], errors: str = "replace") -> str:
        """Text of `ids`. A token can end inside a multi-byte character, so a slice of ids may not
        be valid UTF-8: by default such bytes become U+FFFD, as in tiktoken. errors="strict"
        raises instead, and "surrogatepass" returns exactly the text that was encoded, lone
        surrogates included."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        return self.decode_bytes([token_id])

    def to_tiktoken(self):
        """The same tokenizer as a `tiktoken.Encoding`: our ranks, tiktoken's Rust speed."""
        import tiktoken

        return tiktoken.Encoding(self.name, pat_str=self.pattern, mergeable_ranks=self.ranks,
                                 special_tokens=self.special_tokens)
