"""Chatting with a fine-tuned model: streamed pieces that join to the reply, a history that drops
its oldest turns to fit the context, and `llmcourse chat` on a real run folder."""
import subprocess
import sys

import pytest
import torch

from llmcourse.finetune.chat import Chat, stream_reply
from llmcourse.finetune.sft import InstructionBatches, encode_conversations, reply
from llmcourse.model.generate import stream, stream_text
from llmcourse.tokenizer import save_tokenizer
from llmcourse.training import Trainer, get_train_preset
from tests.test_sft import CONVERSATIONS, setup


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tiny model fine-tuned to answer CONVERSATIONS, saved as a run folder."""
    model, tokenizer = setup()
    data = InstructionBatches(encode_conversations(CONVERSATIONS, tokenizer, 32), pad_id=0)
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=150, lr=3e-3,
                           warmup_steps=10, eval_every=0, precision="fp32")
    folder = tmp_path_factory.mktemp("run")
    Trainer(model, data, None, cfg, out_dir=folder, progress=False).fit()
    save_tokenizer(tokenizer, folder / "tokenizer.json")
    return model.eval(), tokenizer, folder


def test_streamed_pieces_join_to_the_decoded_reply(tuned):
    model, tokenizer, _ = tuned
    prompt = tokenizer.encode("the king é")  # a two-byte character: pieces never split it
    pieces = list(stream_text(model, tokenizer, prompt, 12, temperature=1.0, seed=3))
    ids = [t.item() for t in stream(model, torch.tensor([prompt]), 12, temperature=1.0, seed=3)]
    assert "".join(pieces) == tokenizer.decode(ids)
    assert all(not p.endswith("\ufffd") for p in pieces[:-1])
    messages = [("user", "Reverse the words.\n\nking queen")]
    assert "".join(stream_reply(model, tokenizer, messages, temperature=0)) == "queen king"


def test_a_chat_answers_remembers_and_drops_the_oldest_turns(tuned):
    model, tokenizer, _ = tuned
    chat = Chat(model, tokenizer, min_room=8)
    assert chat.ask("Reverse the words.\n\nking queen") == "queen king"
    assert chat.history[-2:] == [("user", "Reverse the words.\n\nking queen"),
                                 ("assistant", "queen king")]
    for _ in range(3):
        chat.ask("Say the word twice.\n\nhall")
    sent = chat.messages("Say the word twice.\n\nhall")
    assert sent[-1] == ("user", "Say the word twice.\n\nhall")
    assert len(sent) < len(chat.history) + 1  # the oldest turns no longer fit a 32-token context
    assert sent[0][0] == "user"  # dropped whole exchanges: it still starts with a question
    with pytest.raises(ValueError, match="too long"):
        chat.ask("king " * 40)
    alone = Chat(model, tokenizer, min_room=8, remember=False)
    alone.ask("Say the word twice.\n\nhall")
    assert alone.messages("hi") == [("user", "hi")]


def test_the_command_line_chats_with_a_run(tuned, tmp_path):
    model, tokenizer, folder = tuned
    text = r"Reverse the words.\n\nking queen" + "\n" + r"Say the word twice.\n\nhall" + "\n"
    done = subprocess.run([sys.executable, "-m", "llmcourse", "chat", str(folder), "--forget"],
                          input=text, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = [reply(model, tokenizer, [("user", "Reverse the words.\n\nking queen")]),
                reply(model, tokenizer, [("user", "Say the word twice.\n\nhall")])]
    assert done.stdout.splitlines() == [r"> Reverse the words.\n\nking queen", expected[0],
                                        r"> Say the word twice.\n\nhall", expected[1]]
    # a pretraining run has no chat tokens: a clear error, not a garbled chat
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    (pretrained / "checkpoint.pt").write_bytes((folder / "checkpoint.pt").read_bytes())
    save_tokenizer(tokenizer.__class__(tokenizer.ranks, {}, tokenizer.pattern, tokenizer.name),
                   pretrained / "tokenizer.json")
    done = subprocess.run([sys.executable, "-m", "llmcourse", "chat", str(pretrained)],
                          input="hi\n", capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "chat tokens" in done.stderr
