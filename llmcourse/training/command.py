"""`llmcourse train` and `llmcourse generate`: the pretraining recipe and sampling from its
checkpoints, from the command line. The same `Trainer` runs in the chapters, here, and under
torchrun:

    torchrun --nproc-per-node 2 -m llmcourse train --strategy fsdp    # or ddp (the default), zero1
    torchrun --nproc-per-node 2 -m llmcourse train --strategy deepspeed --deepspeed-config zero3

What a run folder holds, and how it resumes, is `llmcourse.training.run_folder`'s.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from llmcourse.model.config import PRESETS, get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.tokenizer import END_OF_TEXT, load_tokenizer
from llmcourse.training.checkpoint import load_checkpoint
from llmcourse.training.config import TRAIN_PRESETS, get_train_preset
from llmcourse.training.data import PretrainingData, prepare_data
from llmcourse.training.deepspeed_engine import MissingExtra, deepspeed_config
from llmcourse.training.distributed import (
    Distributed,
    init_distributed,
    launched_by_torchrun,
    same_on_all_ranks,
    shutdown,
)
from llmcourse.training.precision import resolve_precision
from llmcourse.training.run_folder import (
    add_run_arguments,
    fit_run,
    load_run,
    plan_budget,
    read_run,
    refuse_changes,
    refuse_overwrite,
    where_it_runs,
    write_run,
)
from llmcourse.training.timing import seconds_per_step
from llmcourse.training.trainer import CHECKPOINT, Trainer


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(TRAIN_PRESETS),
                        help="training recipe (default: course, the course model's, on a CPU; "
                             "course-gpu, the same recipe scaled up, on a CUDA GPU)")
    parser.add_argument("--model", choices=sorted(PRESETS),
                        help="model shape (default: course, the course model's)")
    parser.add_argument("--corpus", help="corpus name (see `llmcourse corpus list`; default: "
                                         "shakespeare)")
    parser.add_argument("--vocab-size", type=int,
                        help="BPE vocabulary, end-of-text included (default: the model preset's)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    budget.add_argument("--tokens", type=float, help="training tokens, e.g. 2e6")
    budget.add_argument("--minutes", type=float,
                        help="wall-clock budget, measured on a few steps first")
    add_run_arguments(parser, "runs/course")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="a run folder written by `llmcourse train`")
    parser.add_argument("--prompt", default="",
                        help="text to continue (default: start a new document)")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 is greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)


def _steps_for_minutes(model: GPT, data: PretrainingData, cfg, device, minutes: float) -> int:
    """Fit the budget to this machine's speed; evaluation adds about eval_batches forward passes
    every eval_every steps, a few percent."""
    per_step = seconds_per_step(model, data.train_ids, cfg, device)
    return max(1, int(minutes * 60 / per_step * 0.95))


def train_command(args: argparse.Namespace) -> int:
    """Under torchrun, every process runs this; rank 0 alone prints and writes."""
    try:
        if args.strategy == "deepspeed" and not launched_by_torchrun():
            raise ValueError("--strategy deepspeed runs under torchrun: "
                             "torchrun --nproc-per-node 2 -m llmcourse train "
                             "--strategy deepspeed ...")
        info, device = init_distributed(args.strategy, args.device, args.deepspeed_config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        return _train(args, info, device)
    except (ValueError, CheckpointError, MissingExtra) as err:
        # a bad setting or file: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        shutdown(info)


def _train(args: argparse.Namespace, info: Distributed | None, device: torch.device) -> int:
    main = info is None or info.is_main
    say = (lambda *a: print(*a, file=sys.stderr)) if main else (lambda *a: None)
    out = Path(args.out)
    overrides = {k: v for k, v in (("precision", args.precision), ("seed", args.seed),
                                   ("batch_size", args.batch_size), ("grad_accum", args.grad_accum))
                 if v is not None}
    preset = args.preset or ("course-gpu" if device.type == "cuda" else "course")
    tokenizer = None
    if args.resume:
        run = _saved_run(out, args, overrides)
        preset = run.get("preset") or preset
        cfg = get_train_preset(preset).replace(**run["train_config"])
        args.corpus, args.model = run["corpus"], run["model_preset"]
        args.vocab_size = run["vocab_size"]
        tokenizer = load_tokenizer(out / "tokenizer.json")  # the run's own, not trained again
    else:
        refuse_overwrite(out)
        cfg = get_train_preset(preset, **overrides)
    args.corpus = args.corpus or "shakespeare"
    args.model = args.model or "course"
    if args.vocab_size is None:
        args.vocab_size = get_preset(args.model).vocab_size
    if info is not None:
        info.rows(cfg.batch_size)  # a batch the processes cannot share is refused before any work
        if info.strategy == "deepspeed":  # so is a DeepSpeed config this run cannot follow
            precision = resolve_precision(cfg.precision, device)
            deepspeed_config(info.deepspeed_config, cfg, info, precision, device)
    say(f"preparing {args.corpus} with a {args.vocab_size}-token BPE vocabulary ...")
    data = prepare_data(args.corpus, args.vocab_size, tokenizer)
    torch.manual_seed(cfg.seed)
    context_length = max(cfg.context_length, get_preset(args.model).context_length)
    model = GPT(get_preset(args.model, vocab_size=data.tokenizer.n_vocab,
                           context_length=context_length))
    steps = args.steps
    if args.tokens is not None:
        steps = max(1, round(args.tokens / cfg.tokens_per_step))
    elif args.minutes is not None:
        # timed on one process (its speed with the whole batch), then shared so all agree
        timed = _steps_for_minutes(model, data, cfg, device, args.minutes) if main else 0
        steps = same_on_all_ranks(timed, info)
        if args.resume:  # minutes more
            steps += load_checkpoint(out / CHECKPOINT)["step"]
    cfg, stop_at = plan_budget(cfg, steps, args.resume, say)
    if main:
        write_run(out, data.tokenizer, {
            "command": "train", "preset": preset, "corpus": args.corpus,
            "model_preset": args.model, "vocab_size": args.vocab_size,
            "train_config": cfg.as_dict()})
    say(f"training {sum(p.numel() for p in model.parameters()):,} parameters for "
        f"{cfg.max_steps} steps ({cfg.max_steps * cfg.tokens_per_step:,} tokens) on "
        f"{where_it_runs(info, device)} in {out}")
    trainer = Trainer(model, data.train_ids, data.val_ids, cfg, out_dir=out, resume=args.resume,
                      device=device, bytes_per_token=data.val_bytes_per_token, distributed=info)
    code = fit_run(trainer, out, stop_at, png=not args.no_png, say=say)
    evaluated = [m for m in trainer.history if m["kind"] == "eval"]
    if code == 0 and main and trainer.step == cfg.max_steps and evaluated:
        last = evaluated[-1]
        print(f"done: validation loss {last['val_loss']:.3f} nats/token, "
              f"{last['val_bpb']:.3f} bits/byte; sample with `llmcourse generate {out}`")
    return code


# what a run is: a flag that would change it is refused on --resume ((flag, run.json's key, the
# key inside train_config or None))
RUN_FLAGS = (("--preset", "preset", None), ("--model", "model_preset", None),
             ("--corpus", "corpus", None), ("--vocab-size", "vocab_size", None),
             ("--precision", None, "precision"), ("--seed", None, "seed"),
             ("--batch-size", None, "batch_size"), ("--grad-accum", None, "grad_accum"))


def _saved_run(out: Path, args: argparse.Namespace, overrides: dict) -> dict:
    """run.json of the run to continue, once every flag given agrees with it."""
    run = read_run(out, "train")
    given = {**vars(args), **overrides}
    saved = {flag: run.get(key) if key else run["train_config"][train_key]
             for flag, key, train_key in RUN_FLAGS}
    refuse_changes(saved, {flag: given.get(flag[2:].replace("-", "_")) for flag in saved})
    return run


def generate_command(args: argparse.Namespace) -> int:
    from llmcourse.model.generate import stream_text

    model, tokenizer = load_run(args.run_dir)
    eot = tokenizer.special_tokens.get(END_OF_TEXT)
    # every training document follows an end-of-text id, so a prompt that starts with one asks
    # for the start of a document
    prompt = ([eot] if eot is not None else []) + tokenizer.encode(args.prompt)
    budget = min(args.max_new_tokens, model.cfg.context_length - len(prompt) + 1)
    print(args.prompt, end="", flush=True)
    for piece in stream_text(model, tokenizer, prompt, budget, stop_id=eot,
                             temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                             seed=args.seed):
        print(piece, end="", flush=True)
    print()
    return 0
