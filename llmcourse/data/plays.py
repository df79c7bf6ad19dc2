"""The plays' layout, read once for every stage that takes questions from them: the fine-tuning
tasks of chapter 8 (who speaks a line, in which act) and the evaluation suite of chapter 10 (word
order, cloze).

A speech starts with the speaker's name alone on a line, ending in a full stop: "ROMEO." in most
plays, "Romeo." or "Ham." in a few. The name opens a paragraph (after a blank line, a heading or
the start), which tells it from a one-word line of verse such as "No." inside a speech. The speech
runs to the next blank line, stage direction ("[Exit.]") or heading ("ACT II.", "SCENE I.").

>>> play = "ACT I.\\n\\nROMEO.\\nBut soft, what light\\nthrough yonder window?\\n\\nJul.\\nNo.\\n"
>>> for speech in speeches(play):
...     print(speech)
Speech(speaker='Romeo', act='I', lines=('But soft, what light', 'through yonder window?'))
Speech(speaker='Jul', act='I', lines=('No.',))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_SPEAKER = re.compile(r"^([A-Z][A-Za-z' ]{1,30})\.$")
_HEADING = re.compile(r"^(ACT|SCENE|Act|Scene)\b")
# "ACT II.", "ACT II. SCENE I." and "ACT 2" all open act II
_ACT = re.compile(r"^ACT ([IVX]+|[1-5])\b")
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V"}


@dataclass(frozen=True)
class Speech:
    speaker: str  # in title case: "ROMEO" and "Romeo" are one speaker
    act: str  # a Roman numeral, or "" before the first act and in plays without acts
    lines: tuple[str, ...]


def speeches(play: str) -> list[Speech]:
    """Every speech of a play with at least one line, in order."""
    out: list[Speech] = []
    act, speaker, lines = "", None, []
    for raw in play.splitlines() + [""]:  # the blank line at the end closes the last speech
        line = raw.strip()
        if not line or line.startswith("[") or _HEADING.match(line):
            if speaker is not None and lines:
                out.append(Speech(speaker, act, tuple(lines)))
            speaker, lines = None, []
            heading = _ACT.match(line)
            act = _ROMAN.get(heading.group(1), heading.group(1)) if heading else act
        elif speaker is None and _SPEAKER.match(line):
            speaker = line[:-1].title()
        elif speaker is not None:
            lines.append(line)
    return out
