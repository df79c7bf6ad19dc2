"""Preference pairs: a prompt, the answer preferred (chosen) and one not (rejected).

The common record format (TRL's, Anthropic HH's, UltraFeedback's once flattened) has `prompt`,
`chosen` and `rejected`, each either text or, in the conversational form, a list of messages:

    {"prompt": "Add.\\n\\n2 + 3", "chosen": "5", "rejected": "6"}
    {"prompt": [{"role": "user", "content": "Add.\\n\\n2 + 3"}],
     "chosen": [{"role": "assistant", "content": "5"}],
     "rejected": [{"role": "assistant", "content": "6"}]}

A malformed record raises `PreferenceError` naming its index, or its file and line. So does a pair
whose two answers are the same once surrounding white space is stripped: the loss of such a pair
is log 2 whatever the model does, so it teaches nothing, and in a data set it usually means a bug
upstream.

>>> pair = preferences([{"prompt": "Add.\\n\\n2 + 3", "chosen": "5", "rejected": "6"}])[0]
>>> pair.prompt, pair.chosen, pair.rejected
((Message(role='user', content='Add.\\n\\n2 + 3'),), '5', '6')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcourse.finetune.records import ROLES, Message, RecordError, each_object, read_jsonl


class PreferenceError(RecordError):
    """A preference record that cannot be used; the message names it."""


@dataclass(frozen=True)
class PreferencePair:
    prompt: tuple[Message, ...]  # the conversation up to the answer, ending with the user's turn
    chosen: str
    rejected: str
    task: str = ""

    def __post_init__(self) -> None:
        if self.chosen.strip() == self.rejected.strip():
            raise PreferenceError(f"the chosen and rejected answers are the same "
                                  f"({self.chosen!r}): such a pair has nothing to prefer")


def _messages(value: Any, where: str, key: str) -> tuple[Message, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise PreferenceError(f"{where}: {key!r} is empty")
        return (Message("user" if key == "prompt" else "assistant", value),)
    if not isinstance(value, list) or not value:
        raise PreferenceError(f"{where}: {key!r} must be text or a non-empty list of messages, got "
                              f"{type(value).__name__}")
    out = []
    for k, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"),
                                                                                      str):
            raise PreferenceError(f"{where}: {key!r} message {k} needs a role in {ROLES} and text "
                                  f"content")
        if not m["content"].strip():
            raise PreferenceError(f"{where}: {key!r} message {k} is empty")
        out.append(Message(m["role"], m["content"]))
    return tuple(out)


def _answer(value: Any, where: str, key: str) -> str:
    messages = _messages(value, where, key)
    if len(messages) != 1 or messages[0].role != "assistant":
        raise PreferenceError(f"{where}: {key!r} must be one assistant answer")
    return messages[0].content


def preferences(records: Iterable[Any]) -> list[PreferencePair]:
    """Preference records (prompt, chosen, rejected; text or messages) as PreferencePairs."""
    out = []
    expected = "an object with prompt, chosen and rejected"
    for where, record in each_object(records, expected, PreferenceError):
        missing = [key for key in ("prompt", "chosen", "rejected") if key not in record]
        if missing:
            raise PreferenceError(f"{where}: missing {', '.join(missing)}")
        prompt = _messages(record["prompt"], where, "prompt")
        if prompt[-1].role != "user":
            raise PreferenceError(f"{where}: the prompt must end with the user's turn")
        chosen = _answer(record["chosen"], where, "chosen")
        rejected = _answer(record["rejected"], where, "rejected")
        try:
            out.append(PreferencePair(prompt, chosen, rejected, str(record.get("task", ""))))
        except PreferenceError as err:
            raise PreferenceError(f"{where}: {err}") from None
    return out


def load_preferences(path: str | Path) -> list[PreferencePair]:
    """A JSON Lines file of preference records."""
    return preferences(read_jsonl(path))


def as_record(pair: PreferencePair) -> dict[str, Any]:
    """The pair in the conversational record format (what `preferences` reads back)."""
    return {"prompt": [{"role": m.role, "content": m.content} for m in pair.prompt],
            "chosen": [{"role": "assistant", "content": pair.chosen}],
            "rejected": [{"role": "assistant", "content": pair.rejected}], "task": pair.task}
