"""Pre-tokenization: split text into chunks that BPE never merges across, with GPT-2's regular
expression.

Contractions, runs of letters or digits (each with one optional leading space), runs of
punctuation, and whitespace become separate chunks, so that a merge never glues " dog" to "." and
the vocabulary is not spent on "dog." and "dog!" and "dog?".

>>> split("Hello, world! It's 2024.")
['Hello', ',', ' world', '!', ' It', "'s", ' 2024', '.']
"""
from __future__ import annotations

import regex

# tiktoken's r50k (GPT-2) pattern; \p{L} and \p{N} need the `regex` module, not `re`
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_compiled: dict[str, regex.Pattern] = {}


def compile_pattern(pattern: str = GPT2_PATTERN) -> regex.Pattern:
    if pattern not in _compiled:
        _compiled[pattern] = regex.compile(pattern)
    return _compiled[pattern]


def split(text: str, pattern: str = GPT2_PATTERN) -> list[str]:
    return compile_pattern(pattern).findall(text)
