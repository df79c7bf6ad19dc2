"""Chatting with a fine-tuned model: the chat template, streaming, the KV cache, and stopping at
the end-of-turn token.

`stream_reply` yields the answer to a conversation piece by piece (`llmcourse.model.generate.stream`
keeps a KV cache, so each new token costs one position, not the whole prompt again) and stops at
<|end|>, the token SFT taught the model to write when its turn is over. `Chat` keeps the history
across turns; `chat_box` puts it in a text box in a notebook, and `llmcourse chat RUN_DIR` on the
command line.

**When the history outgrows the context**, the oldest turns are dropped, whole, until the prompt
leaves room for `min_room` new tokens (16 by default; the course model reads only 64 tokens, about
one exchange);
a single message too long even alone is refused with an error, never cut.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

import torch

from llmcourse.finetune.template import END, prompt_ids
from llmcourse.model.generate import stream_text
from llmcourse.tokenizer import Tokenizer


def stream_reply(model: torch.nn.Module, tokenizer: Tokenizer,
                 messages: Sequence[tuple[str, str]], max_new_tokens: int = 48,
                 **options) -> Iterator[str]:
    """The assistant's answer to `messages` ((role, text) pairs), streamed, up to its <|end|>.
    Options as in `llmcourse.model.generate.stream` (temperature=0: greedy)."""
    prompt = prompt_ids(messages, tokenizer)
    room = model.cfg.context_length - len(prompt) + 1
    if room < 1:
        raise ValueError(f"the prompt has {len(prompt)} tokens; the context holds "
                         f"{model.cfg.context_length}")
    end = tokenizer.special_tokens[END]
    yield from stream_text(model, tokenizer, prompt, min(max_new_tokens, room), stop_id=end,
                           **options)


class Chat:
    """A conversation with a model: `say` streams the answer and remembers both turns.
    remember=False sends each message alone (with the system message), for a model fine-tuned on
    single questions, which past turns only confuse; the transcript still keeps them."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, system: str | None = None,
                 max_new_tokens: int = 48, min_room: int | None = None, remember: bool = True,
                 **options) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        if min_room is None:  # room for a short answer: 16 tokens, less in a tiny context
            min_room = max(1, min(16, model.cfg.context_length // 4))
        self.system, self.max_new_tokens, self.min_room = system, max_new_tokens, min_room
        self.remember = remember
        self.options = {"temperature": 0.0, **options}
        self.history: list[tuple[str, str]] = []

    def messages(self, text: str) -> list[tuple[str, str]]:
        """The messages sent for a new user `text`: the system message, then the latest turns that
        fit (oldest dropped first), then `text`."""
        head = [("system", self.system)] if self.system else []
        turns = (self.history if self.remember else []) + [("user", text)]
        limit = self.model.cfg.context_length + 1 - self.min_room
        while len(prompt_ids(head + turns, self.tokenizer)) > limit:
            if len(turns) == 1:
                raise ValueError(f"the message is too long for a context of "
                                 f"{self.model.cfg.context_length} tokens with {self.min_room} "
                                 f"left for the answer; shorten it")
            turns = turns[2:] if turns[0][0] == "user" and len(turns) > 2 else turns[1:]
        return head + turns

    def say(self, text: str) -> Iterator[str]:
        """Stream the model's answer to `text`; the exchange joins the history when it ends."""
        if not text.strip():
            raise ValueError("say something: the message is empty")
        pieces: list[str] = []
        for piece in stream_reply(self.model, self.tokenizer, self.messages(text),
                                  self.max_new_tokens, **self.options):
            pieces.append(piece)
            yield piece
        self.history += [("user", text), ("assistant", "".join(pieces))]

    def ask(self, text: str) -> str:
        """`say`, collected: the whole answer at once."""
        return "".join(self.say(text))

    def transcript(self) -> str:
        """The conversation so far, one message after another, continuation lines indented."""
        return "\n".join(f"{role:>9}: " + text.replace("\n", "\n" + " " * 11)
                         for role, text in self.history)


def chat_box(chat: Chat):
    """A live chat in a notebook: a text box, and the conversation streaming below it."""
    import ipywidgets as widgets

    box = widgets.Text(placeholder="Ask, then press Enter", layout=widgets.Layout(width="100%"))
    log = widgets.Output()

    def send(_):
        text, box.value = box.value, ""
        if not text.strip():
            return
        with log:
            print(f"     user: {text}\nassistant: ", end="", flush=True)
            for piece in chat.say(text):
                print(piece, end="", flush=True)
            print()

    box.on_submit(send)
    return widgets.VBox([box, log])


def add_chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a fine-tuning run's folder: checkpoint.pt, tokenizer.json")
    parser.add_argument("--system", help="a system message that opens the conversation")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default)")
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--forget", action="store_true",
                        help="send each message alone (for a model tuned on single questions)")


def chat_command(args: argparse.Namespace) -> int:
    """Read a message per line from stdin and stream each answer; an empty line or EOF ends. A
    typed backslash-n (\\n) is a line break inside the message."""
    from llmcourse.finetune.template import CHAT_TOKENS
    from llmcourse.training.run_folder import load_run

    model, tokenizer = load_run(args.run_dir)
    missing = [t for t in CHAT_TOKENS if t not in tokenizer.special_tokens]
    if missing:
        raise SystemExit(f"error: {args.run_dir} holds a model without the chat tokens {missing}; "
                         f"chat needs a fine-tuned run (add_chat_tokens, then SFT)")
    chat = Chat(model, tokenizer, args.system, args.max_new_tokens, remember=not args.forget,
                temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    typed = sys.stdin.isatty()
    while True:
        try:
            text = input("> " if typed else "")
        except EOFError:
            break
        if not typed:  # piped in: echo each message, so that the output reads as a transcript
            print(f"> {text}")
        if not text.strip():
            break
        text = text.replace("\\n", "\n")
        try:
            for piece in chat.say(text):
                print(piece, end="", flush=True)
        except ValueError as err:
            print(f"error: {err}", flush=True)
            continue
        print(flush=True)
    return 0
