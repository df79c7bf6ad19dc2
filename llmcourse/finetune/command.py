"""`llmcourse sft`: supervised fine-tuning of a run's model on conversations of your own.

    llmcourse sft --from runs/course --data chats.jsonl --out runs/sft
    llmcourse sft --from runs/course --data chats.jsonl --out runs/sft-lora --lora 8
    torchrun --nproc-per-node 2 -m llmcourse sft --from runs/course --data chats.jsonl
    llmcourse chat runs/sft

The data are the records chapter 8 reads (`llmcourse.finetune.records`): Alpaca's instruction,
input and output, or chat messages, one JSON object a line; a malformed record is refused with its
file and line. A model without the chat template's tokens learns them first (`chat_model`). The
settings are chapter 8's recipe (`sft_config`), and the run folder, --resume, Ctrl-C and torchrun
are `llmcourse train`'s (`llmcourse.training.run_folder`).
"""
from __future__ import annotations

import argparse
from typing import Any

import torch

from llmcourse.training.run_folder import Stage, add_run_arguments, comparable_flags, run_stage


def add_sft_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, "RUN", "the run folder of the model to fine-tune (llmcourse "
                                       "train's, or another sft run's)", "runs/sft")
    parser.add_argument("--data", metavar="FILE",
                        help="conversations: a JSON Lines file of Alpaca or chat records")
    parser.add_argument("--lora", type=int, metavar="R",
                        help="train LoRA adapters of rank R (alpha 2R) and the chat tokens' rows "
                             "instead of every weight")


def add_stage_arguments(parser: argparse.ArgumentParser, source: str, source_help: str,
                        default_out: str) -> None:
    """What `sft` and `dpo` share: the run to start from, the rate, the budget and the run
    folder's options."""
    parser.add_argument("--from", dest="from_run", metavar=source, help=source_help)
    parser.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the recipe's)")
    add_run_arguments(parser, default_out)


def stage_flags(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The flags that define a fine-tuning run ({"--lora": 8, "--seed": None, ...}), as a resume
    compares them: a file or folder as its absolute path (a resume may start elsewhere), and
    `--precision auto` as what it is, the default."""
    # --from is stored as from_run: `from` is a Python keyword
    renamed = {"--from": "from_run"}
    flags = {name: getattr(args, renamed.get(name, name[2:].replace("-", "_"))) for name in names}
    return comparable_flags(flags)


SFT_FLAGS = ("--from", "--data", "--lora", "--lr", "--precision", "--seed", "--batch-size",
             "--grad-accum")


def build_sft(flags: dict[str, Any], precision: str, device: torch.device) -> Stage:
    from llmcourse.finetune.lora import apply_lora
    from llmcourse.finetune.recipe import chat_model, sft_config
    from llmcourse.finetune.records import load_records
    from llmcourse.finetune.sft import InstructionBatches, encode_conversations
    from llmcourse.finetune.template import CHAT_TOKENS
    from llmcourse.training.run_folder import load_run

    model, tokenizer = load_run(flags["--from"])
    if not all(t in tokenizer.special_tokens for t in CHAT_TOKENS):
        tokenizer, model = chat_model(tokenizer, model)
    # a conversation longer than the context keeps its answer and loses its oldest prompt tokens
    examples = encode_conversations(load_records(flags["--data"]), tokenizer,
                                    model.cfg.context_length, too_long="truncate_prompt")
    settings = {"lr": flags["--lr"], "seed": flags["--seed"], "batch_size": flags["--batch-size"],
                "grad_accum": flags["--grad-accum"], "precision": precision}
    rank = flags["--lora"]
    config = sft_config(lora=bool(rank), **{k: v for k, v in settings.items() if v is not None})
    export = {}
    if rank:
        lora = {"rank": rank, "alpha": 2.0 * rank,
                "train_rows": [tokenizer.special_tokens[t] for t in CHAT_TOKENS]}
        apply_lora(model, **lora)
        export["lora"] = lora  # load_run applies the same adapters, loads, then merges them
    return Stage(model.train(), InstructionBatches(examples, pad_id=0), config, tokenizer, export)


def sft_command(args: argparse.Namespace) -> int:
    if not args.resume and (args.from_run is None or args.data is None):
        raise SystemExit("error: llmcourse sft needs --from RUN and --data FILE (or --resume)")
    return run_stage(args, "sft", stage_flags(args, SFT_FLAGS), build_sft)
