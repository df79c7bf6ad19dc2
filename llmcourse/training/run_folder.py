"""A training run's folder, shared by `llmcourse train`, `sft` and `dpo`: what it holds, how a
run starts, resumes and stops, and how `chat`, `eval` and `generate` read its model back.

A run folder holds tokenizer.json, checkpoint.pt (model, optimizer, generators, step: what
--resume continues), metrics.jsonl (one line per step and per evaluation), run.json (the command,
its settings and what load_run needs to rebuild the model), and the training curves as
curves.html (interactive) and curves.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from llmcourse.model.config import ModelConfig
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import Tokenizer, load_tokenizer, save_tokenizer
from llmcourse.training.checkpoint import load_checkpoint
from llmcourse.training.config import TrainConfig
from llmcourse.training.distributed import STRATEGIES, Distributed
from llmcourse.training.trainer import CHECKPOINT, Trainer


@dataclass
class Stage:
    """What a fine-tuning command trains: the module the trainer steps, its batches, its settings,
    the tokenizer to save, and what load_run needs to rebuild the model (run.json's keys)."""

    model: torch.nn.Module
    data: Any
    config: TrainConfig
    tokenizer: Tokenizer
    export: dict[str, Any] = field(default_factory=dict)


def add_run_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """The options every training command shares (train, sft, dpo): the run folder, --resume, the
    device and precision, the batch, and the strategy under torchrun."""
    parser.add_argument("--out", default=default_out,
                        help=f"run folder (default: {default_out})")
    parser.add_argument("--resume", action="store_true",
                        help="continue the checkpoint in --out, with its tokenizer and settings; "
                             "a budget given (--steps) may extend it")
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


def refuse_overwrite(out: Path) -> None:
    if (out / CHECKPOINT).exists():
        raise SystemExit(f"error: {out} already holds a run: add --resume to continue it, "
                         "or pick another --out")


def read_run(out: Path, command: str) -> dict[str, Any]:
    """run.json of a run of `command` (train, sft, dpo) to continue."""
    if not (out / "run.json").exists() or not (out / CHECKPOINT).exists():
        raise SystemExit(f"error: --resume: {out} holds no run (run.json and {CHECKPOINT}) to "
                         "continue")
    run = json.loads((out / "run.json").read_text())
    made_by = run.get("command", "train")  # the first runs of train did not write it
    if made_by != command:
        raise SystemExit(f"error: --resume: {out} is a run of `llmcourse {made_by}`; continue it "
                         f"with `llmcourse {made_by} --out {out} --resume`")
    return run


INPUT_FLAGS = ("--from", "--data", "--pairs")  # the files and run folders a run reads


def comparable_flags(flags: dict[str, Any]) -> dict[str, Any]:
    """Flags as a resume compares them: each input file or folder as its absolute path (a resume
    may start elsewhere), and `--precision auto` as what it is, the default (None).

    >>> comparable_flags({"--precision": "auto", "--seed": 1})
    {'--precision': None, '--seed': 1}
    """
    flags = dict(flags)
    for name in INPUT_FLAGS:
        if flags.get(name) is not None:
            flags[name] = str(Path(flags[name]).resolve())
    if flags.get("--precision") == "auto":
        flags["--precision"] = None
    return flags


def refuse_changes(saved: dict[str, Any], given: dict[str, Any]) -> None:
    """On --resume, every flag given must have the run's value: a run is continued as it was.

    >>> refuse_changes({"--seed": 0, "--lora": None}, {"--seed": 0, "--lora": None})
    >>> refuse_changes({"--seed": 0}, {"--seed": 1})
    Traceback (most recent call last):
    ...
    ValueError: --resume continues the run as it was: --seed 1 differs from the run's 0; leave \
--seed out, or start a new run in another --out
    """
    saved = comparable_flags(saved)
    for flag, value in comparable_flags(given).items():
        if value is not None and value != saved.get(flag):
            raise ValueError(f"--resume continues the run as it was: {flag} {value} differs from "
                             f"the run's {saved.get(flag)!r}; leave {flag} out, or start a new "
                             "run in another --out")


# what load_run reads of a run folder (or of a Hugging Face checkpoint's)
RUN_FILES = (CHECKPOINT, "run.json", "tokenizer.json", "model.safetensors", "config.json")


def fingerprints(flags: dict[str, Any]) -> dict[str, str]:
    """The SHA-256 of each input a run reads ({"--data": "3f2a...", ...}): of a file's bytes, or
    of the files of a run folder that load_run reads."""
    found = {}
    for flag in INPUT_FLAGS:
        if flags.get(flag) is None:
            continue
        path = Path(flags[flag])
        if not path.exists():
            raise FileNotFoundError(f"{path} ({flag}) is missing")
        files = [path] if path.is_file() else [path / name for name in RUN_FILES]
        digest = hashlib.sha256()
        for file in [f for f in files if f.is_file()]:
            digest.update(file.name.encode())
            with open(file, "rb") as f:
                for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                    digest.update(chunk)
        found[flag] = digest.hexdigest()
    return found


def refuse_changed_inputs(run: dict[str, Any]) -> None:
    """On --resume, the files the run read must be those it started from."""
    now = fingerprints(run["flags"])
    for flag, saved in run.get("inputs", {}).items():
        if now.get(flag) != saved:
            raise ValueError(f"--resume continues the run as it was, but {run['flags'][flag]} "
                             f"({flag}) has changed since it started: restore it, or start a "
                             "new run in another --out")


def plan_budget(cfg: TrainConfig, steps: int | None, resume: bool,
                say=print) -> tuple[TrainConfig, int | None]:
    """(the config, the step to stop at or None) for a budget of `steps` steps in all. A new run
    takes it as its length (warmup at most a tenth of it). A resumed run keeps its schedule: a
    larger budget stretches it to the new end, a smaller one only stops there."""
    if steps is None:
        return cfg, None
    if not resume:
        warmup_steps = min(cfg.warmup_steps, max(1, steps // 10))
        return cfg.replace(max_steps=steps, warmup_steps=warmup_steps), None
    if steps > cfg.max_steps:
        say(f"--resume: the budget grows from {cfg.max_steps} to {steps} steps; the learning "
            "rate's schedule stretches to the new end from here on")
        return cfg.replace(max_steps=steps), None
    say(f"--resume: stopping at step {steps} of {cfg.max_steps}; --resume again to go on")
    return cfg, steps


def write_run(out: Path, tokenizer: Tokenizer, run: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out / "tokenizer.json")
    # written beside and renamed over: a crash leaves the old run.json whole
    partial = out / "run.json.partial"
    partial.write_text(json.dumps(run, indent=1))
    partial.replace(out / "run.json")


def where_it_runs(info: Distributed | None, device: torch.device) -> str:
    if info is None:
        return str(device)
    how = info.strategy if info.deepspeed_config is None else f"deepspeed {info.deepspeed_config}"
    return f"{info.world_size} processes ({how}) on {device.type}"


def fit_run(trainer: Trainer, out: Path, stop_at: int | None, png: bool = True,
            say=print) -> int:
    """Train to the end (or to `stop_at`), then draw the curves; Ctrl-C saves a checkpoint first.
    Returns the command's exit code (130 after Ctrl-C)."""
    main = trainer.is_main
    try:
        trainer.fit(None if stop_at is None else max(0, stop_at - trainer.step))
    except KeyboardInterrupt as err:
        if main:
            write_curves(out, trainer.history, png=png)
        say(f"\n{err}; continue with --resume")
        return 130
    if main:
        write_curves(out, trainer.history, png=png)
        if trainer.step < trainer.cfg.max_steps:
            print(f"stopped at step {trainer.step} of {trainer.cfg.max_steps}; continue with "
                  "--resume")
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
    """The model (eval mode, on the CPU) and tokenizer of a run folder of `train`, `sft` or `dpo`:
    LoRA adapters are merged into the weights, and DPO's policy is read out of its objective."""
    folder = Path(folder)
    state = load_checkpoint(folder / CHECKPOINT)
    run_json = folder / "run.json"
    run = json.loads(run_json.read_text()) if run_json.exists() else {}
    model = GPT(ModelConfig.from_dict(state["model_config"] or run["model_config"]))
    prefix = run.get("weights_prefix", "")  # "policy." for DPO's objective
    weights = {k.removeprefix(prefix): v for k, v in state["model"].items()}
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    if run.get("lora"):
        from llmcourse.finetune.lora import apply_lora, plain_model

        apply_lora(model, **run["lora"])
        model.load_state_dict(weights)
        model = plain_model(model)
    else:
        model.load_state_dict(weights)
    return model.eval(), tokenizer


def run_stage(args: argparse.Namespace, command: str, flags: dict[str, Any],
              build: Callable[[dict[str, Any], str, torch.device], Stage]) -> int:
    """A fine-tuning command (`llmcourse sft`, `llmcourse dpo`) in its run folder: a new run, or
    --resume with the flags it was started with (one given with another value is refused); Ctrl-C,
    torchrun, the curves and the progress bar as for `llmcourse train`. `flags` are what defines
    the run ({"--lora": 8, ...}); `build(flags, precision, device)` makes what to train."""
    from llmcourse.finetune.records import RecordError
    from llmcourse.model.hf_checkpoint import CheckpointError
    from llmcourse.training.deepspeed_engine import MissingExtra
    from llmcourse.training.distributed import init_distributed, shutdown
    from llmcourse.training.precision import resolve_precision

    try:
        info, device = init_distributed(args.strategy, args.device, args.deepspeed_config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    main = info is None or info.is_main
    say = (lambda *a: print(*a, file=sys.stderr)) if main else (lambda *a: None)
    out = Path(args.out)
    try:
        if args.resume:
            run = read_run(out, command)
            refuse_changes(run["flags"], flags)
            refuse_changed_inputs(run)
            flags = run["flags"]
        else:
            refuse_overwrite(out)
        # what the build draws (new token rows, LoRA's matrices) is the same in every process and
        # every run with this seed
        seed = flags.get("--seed")
        torch.manual_seed(TrainConfig().seed if seed is None else seed)
        stage = build(flags, resolve_precision(flags["--precision"] or "auto", device), device)
        cfg = stage.config
        if args.resume:
            cfg = cfg.replace(**run["train_config"])
        cfg, stop_at = plan_budget(cfg, args.steps, args.resume, say)
        if info is not None:
            info.rows(cfg.batch_size)  # a batch the processes cannot share is refused first
        if main:
            inputs = run.get("inputs", {}) if args.resume else fingerprints(flags)
            write_run(out, stage.tokenizer, {"command": command, "flags": flags, "inputs": inputs,
                                             "train_config": cfg.as_dict(), **stage.export})
        say(f"{command}: {len(stage.data):,} examples, {cfg.max_steps} steps of "
            f"{cfg.batch_size * cfg.grad_accum} on {where_it_runs(info, device)} in {out}")
        trainer = Trainer(stage.model, stage.data, None, cfg, out_dir=out, resume=args.resume,
                          device=device, distributed=info)
        code = fit_run(trainer, out, stop_at, png=not args.no_png, say=say)
        if code == 0 and main and trainer.step == cfg.max_steps:
            print(f"done: chat with `llmcourse chat {out}`, score with `llmcourse eval {out}`")
        return code
    except (ValueError, CheckpointError, RecordError, FileNotFoundError, MissingExtra) as err:
        print(f"error: {err}", file=sys.stderr)  # a bad setting or file: one line
        return 2
    finally:
        shutdown(info)
