"""The course's DPO recipe, in one place for chapter 9, evaluation and the tests: chapter 9's
"DPO + SFT" run. `dpo_model()` is the SFT model aligned by it, trained once per machine and
cached as the SFT model is, together with the held-out pairs it is measured on.

3,000 training pairs made from the SFT model's own mistakes, 200 steps of 16 pairs at a peak rate
of 1e-3, beta 0.1, and the SFT loss on the chosen answers added (weight 1): in chapter 9 this kept
the SFT model's exact-match score while ranking more held-out pairs right, where DPO alone lost
half of it. Its time is the 200 steps, the pairs (sampled in batches of many prompts) and the
reference's log-probabilities. When the recipe was set, 300 steps answered 90 of 280 held-out
questions and 200 steps 87, with the same share of held-out pairs ranked right.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmcourse.dpo.pairs import MadePairs, make_pairs
from llmcourse.dpo.preferences import PreferencePair, as_record, preferences
from llmcourse.tokenizer import Tokenizer
from llmcourse.training.config import TrainConfig, get_train_preset

PAIRS = 3000  # training prompts, one pair each
STEPS = 200
LR = 1e-3
BETA = 0.1
SFT_WEIGHT = 1.0
CONTEXT = 64  # tokens of prompt and answer; longer prompts lose their oldest tokens


def dpo_config(**overrides: Any) -> TrainConfig:
    """The training settings: the course preset, 16 pairs a step, a short warmup."""
    settings = dict(max_steps=STEPS, lr=LR, warmup_steps=20, batch_size=16, eval_every=50,
                    eval_batches=4, precision="fp32")
    return get_train_preset("course", **{**settings, **overrides})


# how the pairs are sampled from the SFT model (make_pairs' settings): part of the cache key
TRAIN_SAMPLING = {"samples": 4, "temperature": 1.0, "seed": 0, "per_prompt": 1}
TEST_SAMPLING = {"samples": 8, "temperature": 1.0, "seed": 1, "per_prompt": 2}


def recipe_pairs(model, tokenizer: Tokenizer, tasks) -> tuple[MadePairs, MadePairs]:
    """(training pairs, held-out pairs) from the SFT model's samples: PAIRS training prompts, and
    up to two pairs per held-out question, with different wrong answers."""
    picked = random.Random(0).sample(tasks.train, PAIRS)
    train = make_pairs(model, tokenizer, picked, **TRAIN_SAMPLING)
    test = make_pairs(model, tokenizer, tasks.test, **TEST_SAMPLING)
    return train, test


@dataclass
class DPOModel:
    tokenizer: Tokenizer  # with the chat tokens
    model: Any  # the GPT, on the CPU, in eval mode
    test_pairs: list[PreferencePair]  # the held-out pairs it is measured on
    metrics: dict[str, Any]  # train_seconds, steps, final_loss
    path: Path
    from_cache: bool


def _entry(sft_path: Path, cache: Path | str | None) -> tuple[str, Path]:
    from llmcourse.download import cache_dir
    from llmcourse.training.course_model import code_closure, code_fingerprint, module_source

    settings = [sft_path.name, PAIRS, STEPS, LR, BETA, SFT_WEIGHT, TRAIN_SAMPLING, TEST_SAMPLING]
    digest = hashlib.sha256(json.dumps(settings).encode())
    for name in code_closure(__name__):  # this recipe and all it imports
        digest.update(code_fingerprint(module_source(name)).encode())
    key = digest.hexdigest()
    return key, Path(cache_dir() if cache is None else cache) / "dpo_model" / key[:16]


def keep_dpo_model(trainer, tokenizer: Tokenizer, test_pairs: list[PreferencePair],
                   cache: Path | str | None = None) -> bool:
    """Cache a policy that a notebook aligned by this recipe (chapter 9 does), so that dpo_model()
    loads it instead of training it again. Only a finished run with the recipe's settings and
    objective is kept; returns whether it was."""
    from llmcourse.finetune.recipe import sft_model
    from llmcourse.training.course_model import FORMAT, write_entry

    objective = trainer.model
    same = (trainer.cfg == dpo_config() and trainer.step == STEPS
            and len(trainer.train_tokens) == PAIRS
            and (objective.beta, objective.average, objective.sft_weight) == (BETA, False,
                                                                               SFT_WEIGHT))
    if not same:
        return False
    key, entry = _entry(sft_model(cache=cache).path, cache)
    policy = copy.deepcopy(objective.policy).cpu().eval()
    history = [m for m in trainer.history if m["kind"] == "train"]
    metrics = {"train_seconds": None, "steps": STEPS, "final_loss": history[-1]["loss"]}
    write_entry(entry, tokenizer, policy, {"format": FORMAT, "key": key, "metrics": metrics,
                                           "test_pairs": [as_record(p) for p in test_pairs]})
    return True


def dpo_model(cache: Path | str | None = None, progress: bool = False) -> DPOModel:
    """The SFT model after DPO by this recipe: from the cache, or trained and cached."""
    from llmcourse.data.corpus import load_corpus
    from llmcourse.dpo.training import (
        DPOObjective,
        PreferenceBatches,
        encode_pairs,
        reference_logprobs,
    )
    from llmcourse.finetune.recipe import sft_model, sft_tasks
    from llmcourse.training import Trainer
    from llmcourse.training.course_model import FORMAT, CourseModelError, read_entry, write_entry
    from llmcourse.training.timing import announce

    sft = sft_model(cache=cache, progress=progress)
    key, entry = _entry(sft.path, cache)
    policy = copy.deepcopy(sft.model)
    if entry.exists():
        try:
            tokenizer, meta = read_entry(entry, key, policy)
            return DPOModel(tokenizer, policy, preferences(meta["test_pairs"]), meta["metrics"],
                            entry, from_cache=True)
        except (CourseModelError, KeyError) as err:
            warnings.warn(f"the cached DPO model cannot be used: {err}; training it again",
                          stacklevel=2)
            policy = copy.deepcopy(sft.model)
    start = time.perf_counter()
    train, test = recipe_pairs(sft.model, sft.tokenizer, sft_tasks(load_corpus("shakespeare")))
    examples = encode_pairs(train.pairs, sft.tokenizer, CONTEXT, too_long="truncate_prompt")
    config = dpo_config()
    reference = reference_logprobs(sft.model, examples, pad_id=0, precision=config.precision)
    data = PreferenceBatches(examples, pad_id=0, reference=reference)
    objective = DPOObjective(policy, beta=BETA, sft_weight=SFT_WEIGHT)
    announce("the DPO model", objective, data, config, enabled=progress)
    history = Trainer(objective, data, None, config, progress=progress).fit()
    policy = policy.cpu().eval()
    metrics = {"train_seconds": time.perf_counter() - start, "steps": STEPS,
               "final_loss": history[-1]["loss"]}
    write_entry(entry, sft.tokenizer, policy, {"format": FORMAT, "key": key, "metrics": metrics,
                                               "test_pairs": [as_record(p) for p in test.pairs]})
    return DPOModel(sft.tokenizer, policy, test.pairs, metrics, entry, from_cache=False)
