"""Instruction data in the two common record formats, checked as they are read.

- **Alpaca**: `{"instruction": ..., "input": ..., "output": ...}`, `input` optional (Alpaca, Dolly
  once renamed: `context` -> input, `response` -> output).
- **Chat messages**: `{"messages": [{"role": "user", "content": ...}, ...]}` as in OpenAI's format,
  or ShareGPT's `{"conversations": [{"from": "human", "value": ...}, ...]}`. Roles are system
  (first, optional), then user and assistant taking turns, ending with the assistant.

A malformed record raises `RecordError` naming the record (its file and line, when read from a
file) and what is wrong with it: a data set with one bad line in ten thousand should fail at that
line, not deep inside training.

>>> alpaca([{"instruction": "Reverse the words.", "input": "to be", "output": "be to"}])
[Conversation(messages=(Message(role='user', content='Reverse the words.\\n\\nto be'), \
Message(role='assistant', content='be to')), task='')]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant"}


class RecordError(ValueError):
    """A record that is not what its format says; the message names it."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """One training example: the messages, and the task family it belongs to (for per-task
    accuracy; empty for outside data)."""

    messages: tuple[Message, ...]
    task: str = ""

    @property
    def prompt_messages(self) -> tuple[Message, ...]:
        return self.messages[:-1]

    @property
    def answer(self) -> str:
        """The last assistant message: what the model is trained, and scored, to produce."""
        return self.messages[-1].content


def _text(record: dict, key: str, where: str, required: bool = True) -> str:
    value = record.get(key, "")
    if not isinstance(value, str):
        raise RecordError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise RecordError(f"{where}: {key!r} is {'missing' if key not in record else 'empty'}")
    return value


class Records(list):
    """Records read from a file, each with the place it came from ("data.jsonl, line 3"), so that
    an error names the line to fix."""

    def __init__(self, records: Iterable[Any], places: Iterable[str]) -> None:
        super().__init__(records)
        self.places = list(places)


def each_object(records: Iterable[Any], expected: str,
                error: type[RecordError] = RecordError) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for every record: where is its file and line when `records` came from
    `read_jsonl`, else "record i"; a record that is not an object is refused as `error`, saying
    what was `expected`.

    >>> [where for where, _ in each_object([{}, {}], "an object")]
    ['record 0', 'record 1']
    >>> list(each_object(["text"], "an object with a prompt"))
    Traceback (most recent call last):
    ...
    llmcourse.finetune.records.RecordError: record 0: expected an object with a prompt, got str
    """
    places = getattr(records, "places", None)
    for i, record in enumerate(records):
        where = places[i] if places else f"record {i}"
        if not isinstance(record, dict):
            raise error(f"{where}: expected {expected}, got {type(record).__name__}")
        yield where, record


def alpaca(records: Iterable[Any], task_key: str | None = "task") -> list[Conversation]:
    """Alpaca records as one-turn conversations: the instruction and the input (after a blank line,
    when there is one) from the user, the output from the assistant."""
    out = []
    for where, record in each_object(records, "an object with instruction/input/output"):
        instruction = _text(record, "instruction", where)
        extra = _text(record, "input", where, required=False)
        output = _text(record, "output", where)
        prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        task = record.get(task_key, "") if task_key else ""
        out.append(Conversation((Message("user", prompt), Message("assistant", output)), str(task)))
    return out


def chat(records: Iterable[Any]) -> list[Conversation]:
    """Chat records, OpenAI's `messages` or ShareGPT's `conversations`, checked turn by turn."""
    out = []
    expected = "an object with 'messages' (or ShareGPT's 'conversations')"
    for where, record in each_object(records, expected):
        if not {"messages", "conversations"} & set(record):
            raise RecordError(f"{where}: expected {expected}")
        sharegpt = "messages" not in record
        turns = record["conversations" if sharegpt else "messages"]
        if not isinstance(turns, list) or not turns:
            raise RecordError(f"{where}: the messages must be a non-empty list")
        messages = []
        for k, turn in enumerate(turns):
            at = f"{where}, message {k}"
            if not isinstance(turn, dict):
                raise RecordError(f"{at}: expected an object, got {type(turn).__name__}")
            role = turn.get("from" if sharegpt else "role")
            role = SHAREGPT_ROLES.get(role, role) if sharegpt else role
            if role not in ROLES:
                raise RecordError(f"{at}: unknown role {role!r} (expected one of {ROLES})")
            messages.append(Message(role, _text(turn, "value" if sharegpt else "content", at)))
        _check_turns(messages, where)
        out.append(Conversation(tuple(messages), str(record.get("task", ""))))
    return out


def _check_turns(messages: list[Message], where: str) -> None:
    body = messages[1:] if messages[0].role == "system" else messages
    for k, message in enumerate(body):
        expected = "user" if k % 2 == 0 else "assistant"
        if message.role != expected:
            raise RecordError(f"{where}: message {k + len(messages) - len(body)} is from "
                              f"{message.role!r} where {expected!r} should speak (a system message "
                              f"first, then user and assistant take turns)")
    if not body or body[-1].role != "assistant":
        raise RecordError(f"{where}: the last message must be the assistant's, the answer to learn")


def read_jsonl(path: str | Path) -> Records:
    """The records of a JSON Lines file (blank lines skipped), each with its file and line; a line
    that is not JSON is named."""
    records, places = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}, line {n}: not valid JSON ({err.msg})") from None
        places.append(f"{path}, line {n}")
    return Records(records, places)


def load_records(path: str | Path) -> list[Conversation]:
    """A JSONL or JSON-list file of Alpaca or chat records (told apart by the first record)."""
    path = Path(path)
    if path.suffix == ".jsonl":
        records = read_jsonl(path)
    else:
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise RecordError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(records, list):
            raise RecordError(f"{path}: expected a list of records")
    if not records:
        raise RecordError(f"{path} holds no records")
    first = records[0]
    is_chat = isinstance(first, dict) and ({"messages", "conversations"} & set(first))
    return chat(records) if is_chat else alpaca(records)


# A real instruction set for readers who are online: the 1,100 Alpaca-style records of "Build a
# Large Language Model (From Scratch)", chapter 7, pinned to the commit that added them.
INSTRUCTION_DATA = {
    "lfs-instructions": (
        "instruction-data.json",
        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/"
        "4ac480c9ae56ead3ba3bf71060ecbcd783bb8dc6/ch07/01_main-chapter-code/instruction-data.json",
    ),
}


def load_instruction_data(name: str = "lfs-instructions") -> list[Conversation]:
    """A published instruction set, downloaded once, checked against its sha256 and cached
    (`llmcourse.download`), then read by `load_records`. Offline it raises DownloadError, which
    says where to put a copy."""
    from llmcourse.download import Url, fetch_verified

    if name not in INSTRUCTION_DATA:
        raise ValueError(f"unknown instruction set {name!r}; known: {sorted(INSTRUCTION_DATA)}")
    archive, sha256, url = INSTRUCTION_DATA[name]
    return load_records(fetch_verified(archive, sha256, [Url(url)]))
