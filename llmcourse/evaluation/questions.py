"""Asking a model questions and scoring its answers: exact match on what it writes, and preference
accuracy on which of two given answers it finds more likely.

**The prompt format is part of the measurement.** A pretrained model has only read text, so it is
asked in plain text ("Question: ...\\nAnswer:", one line of answer); a fine-tuned model learned the
chat template, so it is asked in that. The same model in the other format can score very
differently (the chapter measures it), which is why a reported number must name its format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from llmcourse.dpo.loss import prefers_chosen
from llmcourse.dpo.preferences import PreferencePair
from llmcourse.evaluation.generation import generate_until_many
from llmcourse.evaluation.likelihood import Request, continuation_logprobs, encode_pair
from llmcourse.finetune.records import Conversation, Message
from llmcourse.finetune.sft import score_answers
from llmcourse.finetune.template import END, prompt_ids
from llmcourse.tokenizer import Tokenizer

PLAIN = "Question: {question}\nAnswer:"


def plain_text(messages: Sequence[Message]) -> str:
    """The plain-text prompt for a conversation's user turns.

    >>> plain_text([Message("user", "Give the sum.\\n\\n2 + 3")])
    'Question: Give the sum.\\n\\n2 + 3\\nAnswer:'
    """
    question = "\n".join(m.content for m in messages if m.role == "user")
    return PLAIN.format(question=question)


@dataclass(frozen=True)
class Prompting:
    """How questions are put to a model: `chat` for the chat template, else plain text."""
    chat: bool

    @property
    def name(self) -> str:
        return "chat template" if self.chat else "plain text"

    def context(self, tokenizer: Tokenizer, messages: Sequence[Message]) -> list[int]:
        if self.chat:
            return prompt_ids([(m.role, m.content) for m in messages], tokenizer)
        return tokenizer.encode_ordinary(plain_text(messages))

    def request(self, tokenizer: Tokenizer, messages: Sequence[Message], answer: str,
                prefix_id: int) -> Request:
        """(context, answer) ids: in the chat template the answer ends with <|end|>, as trained."""
        if self.chat:
            answer_ids = tokenizer.encode_ordinary(answer) + [tokenizer.special_tokens[END]]
            return self.context(tokenizer, messages), answer_ids
        return encode_pair(tokenizer, plain_text(messages), " " + answer, prefix_id)

    def ask(self, model: nn.Module, tokenizer: Tokenizer, messages: Sequence[Message],
            max_new_tokens: int = 24) -> str:
        """The model's greedy answer: to <|end|> in the chat template, else to the line's end."""
        return self.ask_many(model, tokenizer, [messages], max_new_tokens)[0]

    def ask_many(self, model: nn.Module, tokenizer: Tokenizer,
                 conversations: Sequence[Sequence[Message]], max_new_tokens: int = 24) -> list[str]:
        contexts = [self.context(tokenizer, messages) for messages in conversations]
        if self.chat:
            return generate_until_many(model, tokenizer, contexts,
                                       stop_id=tokenizer.special_tokens[END],
                                       max_new_tokens=max_new_tokens)
        given = generate_until_many(model, tokenizer, contexts, stop=["\n"],
                                    max_new_tokens=max_new_tokens)
        return [g.strip() for g in given]


PLAIN_TEXT, CHAT = Prompting(chat=False), Prompting(chat=True)


def answers(model: nn.Module, tokenizer: Tokenizer, questions: Sequence[Conversation],
            prompting: Prompting, max_new_tokens: int = 24) -> list[str]:
    """The model's greedy answer to each question, as `Prompting.ask` gives it one at a time, but
    many questions decoded together."""
    return prompting.ask_many(model, tokenizer, [q.prompt_messages for q in questions],
                              max_new_tokens)


def exact_match(model: nn.Module, tokenizer: Tokenizer, questions: Sequence[Conversation],
                prompting: Prompting, max_new_tokens: int = 24) -> dict[str, tuple[int, int]]:
    """{task family: (answers exactly right, questions)} for the greedy answers."""
    given = answers(model, tokenizer, questions, prompting, max_new_tokens)
    return score_answers([(q.task, a, q.answer) for q, a in zip(questions, given, strict=True)])


def preference_accuracy(model: nn.Module, tokenizer: Tokenizer,
                        pairs: Sequence[PreferencePair], prompting: Prompting,
                        prefix_id: int) -> list[bool]:
    """Per pair, whether the model gives the chosen answer a higher log-probability than the
    rejected one (summed over the answer's tokens)."""
    requests = [prompting.request(tokenizer, p.prompt, answer, prefix_id)
                for p in pairs for answer in (p.chosen, p.rejected)]
    logprobs = [v for v, _ in continuation_logprobs(model, requests)]
    values = torch.tensor(logprobs, dtype=torch.float64)  # the floats as they are: ties stay ties
    return prefers_chosen(values[0::2], values[1::2]).tolist()
