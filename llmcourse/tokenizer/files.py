"""Saving and loading tokenizers, and OpenAI's GPT-2 vocabulary.

The llmcourse tokenizer file is JSON:

    {"format": "llmcourse-bpe", "version": 1, "name": "shakespeare-4k",
     "pattern": "<the pre-tokenization regex>",
     "ranks": ["AA==", "AQ==", ...],     # base64 of each token's bytes; the index is the id
     "special_tokens": {"<|endoftext|>": 4095},
     "sha256": "<hex digest of the fields above, serialised canonically>"}

The checksum catches a file that was truncated or edited; `load` refuses it with a message, as it
refuses a file of another format or version.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from llmcourse.download import PipSdist, Url, fetch_verified, read_tar_members
from llmcourse.tokenizer.bpe import END_OF_TEXT, Tokenizer
from llmcourse.tokenizer.pretokenize import GPT2_PATTERN

FORMAT, VERSION = "llmcourse-bpe", 1

GPT2_ARCHIVE = "openai_whisper-20250625.tar.gz"
GPT2_ARCHIVE_SHA256 = "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
GPT2_SOURCES = (PipSdist("openai-whisper==20250625"),
                Url("https://files.pythonhosted.org/packages/source/o/openai-whisper/"
                    + GPT2_ARCHIVE))
# tiktoken's own check of the file
GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


class TokenizerFileError(ValueError):
    """A tokenizer file is missing, corrupt, or of another format."""


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def save_tokenizer(tok: Tokenizer, path: str | Path) -> None:
    """Write `tok` to `path` atomically (a temporary file, then a rename)."""
    by_id = sorted(tok.ranks.items(), key=lambda kv: kv[1])
    body = {"format": FORMAT, "version": VERSION, "name": tok.name, "pattern": tok.pattern,
            "ranks": [base64.b64encode(token).decode("ascii") for token, _ in by_id],
            "special_tokens": tok.special_tokens}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as tmp:
        json.dump({**body, "sha256": _checksum(body)}, tmp)
    os.replace(tmp.name, path)


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerFileError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerFileError(f"{path}: not a tokenizer file (not valid JSON: {err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TokenizerFileError(f"{path}: not an {FORMAT} file (format is {data.get('format')!r})"
                                 if isinstance(data, dict) else f"{path}: not an {FORMAT} file")
    if data.get("version") != VERSION:
        raise TokenizerFileError(f"{path}: version {data.get('version')!r}; this llmcourse reads "
                                 f"version {VERSION}")
    stored = data.pop("sha256", None)
    if stored != _checksum(data):
        raise TokenizerFileError(f"{path}: checksum mismatch: the file was truncated or edited")
    try:
        ranks = {base64.b64decode(token, validate=True): i for i, token in enumerate(data["ranks"])}
        if len(ranks) != len(data["ranks"]):
            raise ValueError("the same token appears twice")
        special = {str(k): int(v) for k, v in data["special_tokens"].items()}
        return Tokenizer(ranks, special, data["pattern"], data["name"])
    except (KeyError, TypeError, ValueError) as err:
        raise TokenizerFileError(f"{path}: malformed tokenizer: {err}") from None


def parse_tiktoken_ranks(content: bytes) -> dict[bytes, int]:
    """Read OpenAI's `.tiktoken` format: one `base64-token rank` pair per line."""
    ranks = {}
    for line_number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError as err:
            raise TokenizerFileError(f"line {line_number} of the ranks file is malformed: "
                                     f"{err}") from None
    return ranks


def load_gpt2() -> Tokenizer:
    """GPT-2's tokenizer (50,257 ids) with OpenAI's own ranks, fetched once through the package
    index (the same file tiktoken downloads for "gpt2"), verified, and cached."""
    archive = fetch_verified(GPT2_ARCHIVE, GPT2_ARCHIVE_SHA256, GPT2_SOURCES)
    (_, content), = read_tar_members(archive, "*/whisper/assets/gpt2.tiktoken")
    if hashlib.sha256(content).hexdigest() != GPT2_RANKS_SHA256:
        raise TokenizerFileError("gpt2.tiktoken in the archive does not have the expected sha256")
    return Tokenizer(parse_tiktoken_ranks(content), {END_OF_TEXT: 50256}, GPT2_PATTERN, "gpt2")
