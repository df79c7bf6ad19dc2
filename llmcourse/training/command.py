"""`llmcourse train` and `llmcourse generate`: the pretraining recipe and sampling from its
checkpoints, from the command line. The same `Trainer` runs in the chapters, here, and under
torchrun:

    torchrun --nproc-per-node 2 -m llmcourse train --strategy fsdp    # or ddp (the default), zero1
    torchrun --nproc-per-node 2 -m llmcourse train --strategy deepspeed --deepspeed-config zero3

A run folder holds: tokenizer.json, checkpoint.pt (model, optimizer, generators, step: what
--resume continues), metrics.jsonl (one line per step and per evaluation), run.json (the model and
training configs, the corpus), and the training curves as curves.html (interactive) and
curves.png.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from llmcourse.model.config import PRESETS, ModelConfig, get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.tokenizer import END_OF_TEXT, Tokenizer, load_tokenizer, save_tokenizer
from llmcourse.training.checkpoint import load_checkpoint
from llmcourse.training.config import TRAIN_PRESETS, get_train_preset
from llmcourse.training.data import PretrainingData, prepare_data
from llmcourse.training.deepspeed_engine import MissingExtra, deepspeed_config
from llmcourse.training.distributed import (
    STRATEGIES,
    Distributed,
    init_distributed,
    launched_by_torchrun,
    same_on_all_ranks,
    shutdown,
)
from llmcourse.training.trainer import CHECKPOINT, Trainer, resolve_precision, seconds_per_step


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(TRAIN_PRESETS),
                        help="training recipe (default: course, the course model's, on a CPU; "
                             "course-gpu, the same recipe scaled up, on a CUDA GPU)")
    parser.add_argument("--model", default="course", choices=sorted(PRESETS),
                        help="model shape (default: course, the course model's)")
    parser.add_argument("--corpus", default="shakespeare",
                        help="corpus name (see `llmcourse corpus list`)")
    parser.add_argument("--vocab-size", type=int,
                        help="BPE vocabulary, end-of-text included (default: the model preset's)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    budget.add_argument("--tokens", type=float, help="training tokens, e.g. 2e6")
    budget.add_argument("--minutes", type=float,
                        help="wall-clock budget, measured on a few steps first")
    parser.add_argument("--out", default="runs/course", help="run folder (default: runs/course)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--device", help="cpu, cuda, mps (default: the fastest found)")
    parser.add_argument("--no-png", action="store_true",
                        help="write the curves as curves.html only: curves.png starts a headless "
                             "browser, seconds that a short run may not want to spend")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                        help="default: auto")
    parser.add_argument("--seed", type=int, help="default: the preset's")
    parser.add_argument("--batch-size", type=int,
                        help="sequences per micro-batch, over all processes "
                             "(default: the preset's)")
    parser.add_argument("--grad-accum", type=int,
                        help="micro-batches per optimizer step (default: the preset's)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="ddp",
                        help="under torchrun: ddp (a model copy per process), zero1 (the optimizer "
                             "state sharded), fsdp (everything sharded) or deepspeed (needs "
                             "--deepspeed-config); default: ddp")
    parser.add_argument("--deepspeed-config", metavar="CONFIG",
                        help="with --strategy deepspeed: zero1, zero2, zero3 (shipped with the "
                             "course) or a DeepSpeed JSON config file")


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
    cfg = get_train_preset(preset, **overrides)
    if args.resume:
        run_json = out / "run.json"
        run = json.loads(run_json.read_text()) if run_json.exists() else None
        if run is None:
            raise SystemExit(f"error: --resume: {out} holds no run (run.json) to continue")
        cfg = cfg.replace(**run["train_config"])
        args.corpus, args.model = run["corpus"], run["model_preset"]
        args.vocab_size = run["vocab_size"]
    elif (out / CHECKPOINT).exists():
        raise SystemExit(f"error: {out} already holds a run: add --resume to continue it, "
                         "or pick another --out")
    if args.vocab_size is None:
        args.vocab_size = get_preset(args.model).vocab_size
    if info is not None:
        info.rows(cfg.batch_size)  # a batch the processes cannot share is refused before any work
        if info.strategy == "deepspeed":  # so is a DeepSpeed config this run cannot follow
            precision = resolve_precision(cfg.precision, device)
            deepspeed_config(info.deepspeed_config, cfg, info, precision, device)
    say(f"preparing {args.corpus} with a {args.vocab_size}-token BPE vocabulary ...")
    data = prepare_data(args.corpus, args.vocab_size)
    torch.manual_seed(cfg.seed)
    context_length = max(cfg.context_length, get_preset(args.model).context_length)
    model = GPT(get_preset(args.model, vocab_size=data.tokenizer.n_vocab,
                           context_length=context_length))
    if not args.resume:
        steps = args.steps
        if args.tokens is not None:
            steps = max(1, round(args.tokens / cfg.tokens_per_step))
        elif args.minutes is not None:
            # timed on one process (its speed with the whole batch), then shared so all agree
            timed = _steps_for_minutes(model, data, cfg, device, args.minutes) if main else 0
            steps = same_on_all_ranks(timed, info)
        if steps is not None:
            warmup_steps = min(cfg.warmup_steps, max(1, steps // 10))
            cfg = cfg.replace(max_steps=steps, warmup_steps=warmup_steps)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            save_tokenizer(data.tokenizer, out / "tokenizer.json")
            (out / "run.json").write_text(json.dumps({
                "corpus": args.corpus, "model_preset": args.model, "vocab_size": args.vocab_size,
                "train_config": cfg.as_dict()}, indent=1))
    how = info and (info.strategy if info.deepspeed_config is None
                    else f"deepspeed {info.deepspeed_config}")
    where = f"{info.world_size} processes ({how}) on {device.type}" if info else str(device)
    n_params = sum(p.numel() for p in model.parameters())
    say(f"training {n_params:,} parameters for {cfg.max_steps} steps "
        f"({cfg.max_steps * cfg.tokens_per_step:,} tokens) on {where} in {out}")
    trainer = Trainer(model, data.train_ids, data.val_ids, cfg, out_dir=out, resume=args.resume,
                      device=device, bytes_per_token=data.val_bytes_per_token, distributed=info)
    try:
        history = trainer.fit()
    except KeyboardInterrupt as err:
        if main:
            write_curves(out, trainer.history, png=not args.no_png)
        say(f"\n{err}; continue with --resume")
        return 130
    if main:
        write_curves(out, history, png=not args.no_png)
        last = [m for m in history if m["kind"] == "eval"][-1]
        print(f"done: validation loss {last['val_loss']:.3f} nats/token, "
              f"{last['val_bpb']:.3f} bits/byte; sample with `llmcourse generate {out}`")
    return 0


def write_curves(out: Path, history: list[dict], png: bool = True) -> None:
    """curves.html (interactive, self-contained) and, where kaleido and a browser are installed
    and `png`, curves.png."""
    from llmcourse.viz.training import curves_figure

    fig = curves_figure({out.name: history}, title=f"Training curves: {out.name}")
    fig.write_html(out / "curves.html", include_plotlyjs=True, full_html=True)
    if not png:
        return
    try:
        from llmcourse.viz.display import to_png

        (out / "curves.png").write_bytes(to_png(fig))
    except Exception as err:  # noqa: BLE001 - no kaleido or browser: the HTML has the figure
        print(f"no curves.png ({type(err).__name__}: {err}); curves.html has the figure",
              file=sys.stderr)


def load_run(folder: str | Path) -> tuple[GPT, Tokenizer]:
    """The model (eval mode, on the CPU) and tokenizer of a run folder."""
    folder = Path(folder)
    state = load_checkpoint(folder / CHECKPOINT)
    model = GPT(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), load_tokenizer(folder / "tokenizer.json")


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
