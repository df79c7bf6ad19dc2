"""The chapter's fine-tuning recipe, in one place for the chapter, the benchmarks and the tests:
which tasks, the model grown for the chat tokens, and the training settings of full fine-tuning
and of LoRA.

Both runs take the course model's training preset (batch 16, context 64, warmup and cosine decay)
for 1,500 steps, about a minute each on two CPU cores. Full fine-tuning keeps the pretraining
peak rate (3e-3). LoRA trains far fewer numbers and takes a larger one (1e-2, as the LoRA paper
and PEFT's examples do): on these tasks 1e-2 reached 47 of 280 held-out answers, 2e-2 only 22.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from llmcourse.corpus import Corpus
from llmcourse.finetune.lora import apply_lora
from llmcourse.finetune.records import Conversation
from llmcourse.finetune.tasks import make_play_tasks, make_tasks, vocabulary
from llmcourse.finetune.template import CHAT_TOKENS, add_chat_tokens, grow_vocabulary
from llmcourse.model import GPT
from llmcourse.tokenizer import Tokenizer
from llmcourse.training.config import TrainConfig, get_train_preset

# the procedural families a 1M-parameter model can learn from 2,000 examples each, and two that
# it cannot (last_word, add), to show where SFT at this size stops
FAMILIES = ("first_word", "last_word", "count_words", "add", "count_letters")
STEPS = 1500
FULL_LR = 3e-3
LORA = {"rank": 8, "alpha": 16.0, "lr": 1e-2}


@dataclass(frozen=True)
class Tasks:
    train: list[Conversation]
    test: list[Conversation]


def sft_tasks(corpus: Corpus, n_per_family: int = 2000, test_per_family: int = 40,
              seed: int = 0) -> Tasks:
    """The procedural FAMILIES over the corpus's commonest words, and the play tasks (speaker,
    act) with a fifth of the plays held out."""
    procedural = make_tasks(vocabulary(corpus.text), n_per_family, test_per_family, FAMILIES, seed)
    plays = make_play_tasks({d.name: d.text for d in corpus.documents}, n_per_family,
                            test_per_family, seed)
    return Tasks(procedural.train + plays.train, procedural.test + plays.test)


def chat_model(tokenizer: Tokenizer, model: GPT) -> tuple[Tokenizer, GPT]:
    """A copy of the pretrained model grown for the chat tokens, and the tokenizer that has them
    (the pretrained model is left as it was)."""
    tokenizer = add_chat_tokens(tokenizer)
    model = copy.deepcopy(model)
    grow_vocabulary(model, tokenizer.n_vocab)
    return tokenizer, model


def with_lora(tokenizer: Tokenizer, model: GPT) -> GPT:
    """`model` (grown by chat_model) with LoRA on every block matrix and the chat tokens' rows
    trainable; everything else frozen."""
    new_rows = [tokenizer.special_tokens[t] for t in CHAT_TOKENS]
    apply_lora(model, rank=LORA["rank"], alpha=LORA["alpha"], train_rows=new_rows)
    return model


def sft_config(lora: bool = False, **overrides) -> TrainConfig:
    """The training settings: the course preset for STEPS steps, at LoRA's rate or full FT's."""
    settings = {"max_steps": STEPS, "lr": LORA["lr"] if lora else FULL_LR, "warmup_steps": 50,
                "eval_every": 0} | overrides
    return get_train_preset("course", **settings)
