"""Instruction records: the two formats read alike, and every malformed record is named."""
import json

import pytest

from llmcourse.finetune.records import Message, RecordError, alpaca, chat, load_records

ALPACA = {"instruction": "Count the words.", "input": "to be or not", "output": "4"}
OPENAI = {"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Count the words.\n\nto be or not"},
                       {"role": "assistant", "content": "4"}]}
SHAREGPT = {"conversations": [{"from": "human", "value": "Count the words.\n\nto be or not"},
                              {"from": "gpt", "value": "4"}]}


def test_the_formats_give_the_same_conversation():
    a, = alpaca([ALPACA])
    o, = chat([OPENAI])
    s, = chat([SHAREGPT])
    assert a.messages == s.messages == o.messages[1:]
    assert o.messages[0] == Message("system", "Be brief.") and a.answer == "4"
    assert alpaca([{"instruction": "Say hi.", "output": "hi"}])[0].messages[0].content == "Say hi."


@pytest.mark.parametrize("records, message", [
    ([ALPACA, {"instruction": "x"}], "record 1: 'output' is missing"),
    ([{"instruction": " ", "output": "y"}], "record 0: 'instruction' is empty"),
    ([{"instruction": "x", "input": 3, "output": "y"}],
     "record 0: 'input' must be a string, got int"),
    (["just text"], "record 0: expected an object with instruction/input/output, got str"),
])
def test_malformed_alpaca_records_are_named(records, message):
    with pytest.raises(RecordError, match=message):
        alpaca(records)


@pytest.mark.parametrize("record, message", [
    ({"messages": []}, "record 0: the messages must be a non-empty list"),
    ({"messages": [{"role": "bot", "content": "hi"}]}, "record 0, message 0: unknown role 'bot'"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "the last message must be the assistant's"),
    ({"messages": [{"role": "assistant", "content": "hi"}]},
     "message 0 is from 'assistant' where 'user'"),
    ({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]},
     "record 0, message 1: 'content' is missing"),
    ({"text": "hi"}, "expected an object with 'messages'"),
])
def test_malformed_chat_records_are_named(record, message):
    with pytest.raises(RecordError, match=message):
        chat([record])


def test_files_are_read_as_jsonl_or_json(tmp_path):
    lines = tmp_path / "data.jsonl"
    lines.write_text(json.dumps(ALPACA) + "\n\n" + json.dumps(SHAREGPT | {"x": 1}) + "\n")
    with pytest.raises(RecordError, match="data.jsonl, line 3: 'instruction' is missing"):
        load_records(lines)  # the first record decides the format: the second is not Alpaca
    listed = tmp_path / "data.json"
    listed.write_text(json.dumps([OPENAI, SHAREGPT]))
    assert len(load_records(listed)) == 2
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(ALPACA) + "\n{not json\n")
    with pytest.raises(RecordError, match="broken.jsonl, line 2: not valid JSON"):
        load_records(broken)


def test_a_published_instruction_set_loads_when_online(tmp_path, monkeypatch):
    """Online, the real records download, pass their hash and read as conversations; offline the
    download fails with DownloadError and the test skips."""
    from llmcourse.download import DownloadError
    from llmcourse.finetune.records import load_instruction_data

    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    try:
        records = load_instruction_data()
    except DownloadError as err:
        pytest.skip(f"offline: {str(err).splitlines()[0]}")
    assert len(records) == 1100
    assert all(c.messages[-1].role == "assistant" and c.answer for c in records)
