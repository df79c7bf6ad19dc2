"""`llmcourse dpo`: direct preference optimisation of a fine-tuned run on preference pairs of your
own.

    llmcourse dpo --from runs/sft --pairs pairs.jsonl --out runs/dpo --beta 0.1
    llmcourse chat runs/dpo

The pairs are chapter 9's records (`llmcourse.dpo.preferences`): a prompt, the chosen and the
rejected answer, as text or messages, one JSON object a line; a malformed record is refused with
its file and line. The reference is the --from model, frozen: its log-probabilities are computed
once, in the run's precision, before training. The settings are chapter 9's recipe
(`dpo_config`); the run folder, --resume, Ctrl-C and torchrun are `llmcourse train`'s.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
from typing import Any

import torch

from llmcourse.finetune.command import add_stage_arguments, stage_flags
from llmcourse.training.run_folder import Stage, run_stage

DPO_FLAGS = ("--from", "--pairs", "--beta", "--sft-weight", "--lr", "--precision", "--seed",
             "--batch-size", "--grad-accum")


def add_dpo_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, "SFT_RUN", "the run folder of a fine-tuned model (llmcourse "
                                           "sft's): the policy to train and the frozen reference",
                        "runs/dpo")
    parser.add_argument("--pairs", metavar="FILE",
                        help="preference pairs: a JSON Lines file of prompt, chosen, rejected")
    parser.add_argument("--beta", type=float, help="how far from the reference the policy may "
                                                   "go: smaller is farther (default: 0.1)")
    parser.add_argument("--sft-weight", type=float,
                        help="add this much of the chosen answers' next-token loss (default: 0)")


def build_dpo(flags: dict[str, Any], precision: str, device: torch.device) -> Stage:
    from llmcourse.dpo.preferences import load_preferences
    from llmcourse.dpo.recipe import BETA, dpo_config
    from llmcourse.dpo.training import (
        DPOObjective,
        PreferenceBatches,
        encode_pairs,
        reference_logprobs,
    )
    from llmcourse.finetune.template import CHAT_TOKENS
    from llmcourse.training.run_folder import load_run

    reference, tokenizer = load_run(flags["--from"])
    reference = reference.to(device)  # computed where the policy trains, as it will compute
    if not all(t in tokenizer.special_tokens for t in CHAT_TOKENS):
        raise ValueError(f"{flags['--from']} holds a model without the chat tokens: DPO starts "
                         "from a fine-tuned run (llmcourse sft)")
    pairs = encode_pairs(load_preferences(flags["--pairs"]), tokenizer,
                         reference.cfg.context_length, too_long="truncate_prompt")
    settings = {"lr": flags["--lr"], "seed": flags["--seed"], "batch_size": flags["--batch-size"],
                "grad_accum": flags["--grad-accum"], "precision": precision}
    config = dpo_config(**{k: v for k, v in settings.items() if v is not None})
    logps = reference_logprobs(reference, pairs, pad_id=0, precision=precision)
    beta = BETA if flags["--beta"] is None else flags["--beta"]
    objective = DPOObjective(copy.deepcopy(reference), beta=beta,
                             sft_weight=flags["--sft-weight"] or 0.0)
    # the trainer checkpoints the objective: load_run takes the policy out of it
    export = {"model_config": dataclasses.asdict(reference.cfg), "weights_prefix": "policy."}
    return Stage(objective.train(), PreferenceBatches(pairs, pad_id=0, reference=logps), config,
                 tokenizer, export)


def dpo_command(args: argparse.Namespace) -> int:
    if not args.resume and (args.from_run is None or args.pairs is None):
        raise SystemExit("error: llmcourse dpo needs --from SFT_RUN and --pairs FILE (or "
                         "--resume)")
    return run_stage(args, "dpo", stage_flags(args, DPO_FLAGS), build_dpo)
