"""The chapter's fine-tuning recipe, in one place for the chapter, the benchmarks and the tests:
which tasks, the model grown for the chat tokens, and the training settings of full fine-tuning
and of LoRA. `sft_model()` is the course model fine-tuned by it, trained once per machine and
cached as the course model is: the later chapters (DPO, evaluation) and their tests start from it.

Both runs take the course model's training preset (batch 16, context 64, warmup and cosine decay)
for 1,500 steps, one to two minutes each on two CPU cores; chapter 8 runs LoRA for half as many,
to keep within its time. Full fine-tuning keeps the pretraining peak rate (3e-3). LoRA trains far
fewer numbers and takes a larger one (1e-2, as the LoRA paper and PEFT's examples do): on these
tasks, over 1,500 steps, 1e-2 reached 47 of 280 held-out answers, 2e-2 only 22.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcourse.data.corpus import Corpus
from llmcourse.finetune.lora import apply_lora
from llmcourse.finetune.records import Conversation
from llmcourse.finetune.tasks import make_play_tasks, make_tasks, vocabulary
from llmcourse.finetune.template import CHAT_TOKENS, add_chat_tokens, grow_vocabulary
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import Tokenizer
from llmcourse.training.config import TrainConfig, get_train_preset

# the procedural families a 1M-parameter model can learn from 2,000 examples each, and two that
# it cannot (last_word, add), to show where SFT at this size stops
FAMILIES = ("first_word", "last_word", "count_words", "add", "count_letters")
STEPS = 1500
FULL_LR = 3e-3
LORA = {"rank": 8, "alpha": 16.0, "lr": 1e-2}
SFT_EXAMPLES = 10_420  # what sft_tasks() makes with its defaults (a test holds them together)


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




@dataclass
class SFTModel:
    tokenizer: Tokenizer  # with the chat tokens
    model: GPT  # on the CPU, in eval mode
    metrics: dict[str, Any]  # train_seconds, steps, final_loss
    path: Path
    from_cache: bool


def _entry(course, cache: Path | str | None) -> tuple[str, Path]:
    from llmcourse.download import cache_dir
    from llmcourse.training.course_model import code_closure, code_fingerprint, module_source

    digest = hashlib.sha256(json.dumps([course.path.name, STEPS, FULL_LR]).encode())
    for name in code_closure(__name__):  # this recipe and all it imports
        digest.update(code_fingerprint(module_source(name)).encode())
    key = digest.hexdigest()
    return key, Path(cache_dir() if cache is None else cache) / "sft_model" / key[:16]


def keep_sft_model(trainer, tokenizer: Tokenizer, cache: Path | str | None = None) -> bool:
    """Cache a model that a notebook fine-tuned by this recipe (chapter 8 does), so that sft_model()
    loads it instead of training it again. Only a run with the recipe's settings, finished, is kept;
    returns whether it was."""
    from llmcourse.training.course_model import FORMAT, course_model, write_entry

    if trainer.cfg != sft_config() or trainer.step != STEPS or len(trainer.train_tokens) != \
            SFT_EXAMPLES:
        return False
    key, entry = _entry(course_model(cache=cache, progress=False), cache)
    model = copy.deepcopy(trainer.model).cpu().eval()
    history = [m for m in trainer.history if m["kind"] == "train"]
    metrics = {"train_seconds": None, "steps": STEPS, "final_loss": history[-1]["loss"]}
    write_entry(entry, tokenizer, model, {"format": FORMAT, "key": key, "metrics": metrics})
    return True


def sft_model(cache: Path | str | None = None, progress: bool = False) -> SFTModel:
    """The course model after full fine-tuning by this recipe (sft_tasks, STEPS steps at FULL_LR):
    from the cache, or trained (one to three minutes on two CPU cores) and cached."""
    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune.sft import InstructionBatches, encode_conversations
    from llmcourse.training import Trainer
    from llmcourse.training.course_model import (
        FORMAT,
        CourseModelError,
        course_model,
        read_entry,
        write_entry,
    )
    from llmcourse.training.timing import announce

    course = course_model(cache=cache, progress=progress)
    key, entry = _entry(course, cache)
    tokenizer, model = chat_model(course.tokenizer, course.model)
    if entry.exists():
        try:
            tokenizer, meta = read_entry(entry, key, model)
            return SFTModel(tokenizer, model, meta["metrics"], entry, from_cache=True)
        except CourseModelError as err:
            warnings.warn(f"the cached SFT model cannot be used: {err}; training it again",
                          stacklevel=2)
            tokenizer, model = chat_model(course.tokenizer, course.model)
    tasks = sft_tasks(load_corpus(course.config.corpus))
    data = InstructionBatches(encode_conversations(tasks.train, tokenizer, 64), pad_id=0)
    announce("the SFT model", model, data, sft_config(), enabled=progress)
    start = time.perf_counter()
    history = Trainer(model, data, None, sft_config(), progress=progress).fit()
    metrics = {"train_seconds": time.perf_counter() - start, "steps": STEPS,
               "final_loss": history[-1]["loss"]}
    model = model.cpu().eval()
    write_entry(entry, tokenizer, model, {"format": FORMAT, "key": key, "metrics": metrics})
    return SFTModel(tokenizer, model, metrics, entry, from_cache=False)
