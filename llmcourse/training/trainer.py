"""The trainer: the loop of chapter "Pretraining" with every feature a long run needs, each there
for a reason.

    cfg = get_train_preset("course")
    trainer = Trainer(model, train_tokens, val_tokens, cfg, out_dir="runs/course")
    trainer.fit()  # or trainer.fit(stop_after=100), then a new Trainer(..., resume=True).fit()

One optimizer step: for each of `grad_accum` micro-batches, forward under autocast,
loss / grad_accum, backward (the gradients add up to those of the whole batch); then a finite-loss
check, unscaling (fp16), clipping by the global norm, the AdamW step at the schedule's learning
rate. Metrics go to callbacks as plain dicts: the trainer knows nothing of plots, so a notebook
widget, a JSONL file and a progress bar all subscribe the same way.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmcourse.data.batches import random_batch
from llmcourse.foundations.loss import bits_per_byte
from llmcourse.model.gpt import IGNORE
from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.progress import bars_on, progress_bar
from llmcourse.training import deepspeed_engine
from llmcourse.training.checkpoint import config_differences, load_checkpoint, save_checkpoint
from llmcourse.training.config import TrainConfig
from llmcourse.training.distributed import (
    Distributed,
    any_rank,
    barrier,
    full_norm,
    full_state,
    gather_values,
    gradient_sync,
    load_full_state,
    mean_over_ranks,
    parameter_names,
    sum_over_ranks,
    wrap,
)
from llmcourse.training.optim import make_optimizer
from llmcourse.training.schedule import lr_at

Callback = Callable[[dict[str, Any]], None]
# a batch on the device: ids, targets and the model's other arguments
Batch = tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]
CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being a finite number."""


def cpu_has_fast_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX): autocast to bf16
    then pays off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


PRECISION_SETTING = "LLMCOURSE_PRECISION"
PRECISIONS = ("fp32", "bf16", "fp16")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context that computes in `precision` (resolved: fp32, bf16 or fp16) on `device`: what
    the trainer runs its forward passes in, and whatever must compute as they do (DPO's
    reference)."""
    if precision not in PRECISIONS:
        raise ValueError(f"autocast needs a resolved precision ({PRECISIONS}), got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' becomes bf16 where the device computes it fast, fp16 on GPUs without bf16 (Colab's
    T4), else fp32. $LLMCOURSE_PRECISION, where set, is what 'auto' means on every device:
    `LLMCOURSE_PRECISION=fp32` times a machine with fast bf16 as one without it would run. A
    precision asked for by name is kept.

    >>> from unittest import mock
    >>> cpu = torch.device("cpu")
    >>> with mock.patch.dict(os.environ, {PRECISION_SETTING: "fp32"}):
    ...     resolve_precision("auto", cpu), resolve_precision("bf16", cpu)
    ('fp32', 'bf16')
    """
    if precision != "auto":
        return precision
    forced = os.environ.get(PRECISION_SETTING, "").strip().lower()
    if forced and forced != "auto":
        if forced not in PRECISIONS:
            expected = ", ".join(("auto",) + PRECISIONS)
            raise ValueError(f"${PRECISION_SETTING}={forced!r}: expected one of {expected}")
        return forced
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


class Trainer:
    def __init__(self, model: torch.nn.Module, train_tokens: np.ndarray,
                 val_tokens: np.ndarray | None, cfg: TrainConfig, out_dir: str | Path | None = None,
                 callbacks: list[Callback] = (), bytes_per_token: float | None = None,
                 resume: bool = False, progress: bool = True,
                 device: torch.device | str | None = None,
                 distributed: Distributed | None = None) -> None:
        """train_tokens, val_tokens: token arrays, or for fine-tuning sources of examples with a
        `sample` method (llmcourse.finetune.sft.InstructionBatches). bytes_per_token: UTF-8 bytes
        per token of the validation text, for bits per byte. resume: continue from out_dir's
        checkpoint (its training config must equal `cfg`). distributed: this process's place in a
        torchrun launch (see llmcourse.training.distributed); cfg.batch_size is then the global
        micro-batch."""
        self.cfg, self.train_tokens, self.val_tokens = cfg, train_tokens, val_tokens
        self.device = (torch.device(device) if device is not None
                       else next(model.parameters()).device)
        self.dist = distributed
        self.rows = distributed.rows(cfg.batch_size) if distributed is not None else None
        self.model = model.to(self.device)
        if cfg.activation_checkpointing:
            if not hasattr(model, "checkpoint_blocks"):
                raise ValueError("activation_checkpointing needs a model with blocks to checkpoint "
                                 f"(llmcourse's GPT), got {type(model).__name__}")
            model.checkpoint_blocks = True
        wrapped = self.model
        if distributed is not None:
            wrapped = wrap(self.model, distributed, self.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.engine = None  # DeepSpeed's, under --strategy deepspeed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.is_main = distributed is None or distributed.is_main
        self.callbacks, self.bytes_per_token = list(callbacks), bytes_per_token
        self.progress = progress and self.is_main
        # made after wrapping: fully_shard replaces the parameters with shards, and the optimizer
        # must hold those
        sharded = distributed is not None and distributed.strategy == "zero1"
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                                        self.device, sharded=sharded)
        self.param_names = parameter_names(model, self.optimizer)
        if distributed is not None and distributed.strategy == "deepspeed":
            ds_config = deepspeed_engine.deepspeed_config(distributed.deepspeed_config, cfg,
                                                          distributed, self.precision, self.device)
            # the engine steps, clips, casts to bf16/fp16 and scales fp16 losses itself
            self.engine = deepspeed_engine.initialize(model, self.optimizer, ds_config, self.device)
            wrapped = self.engine
            self.optimizer = self.engine.optimizer
        scale_losses = self.precision == "fp16" and self.engine is None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=scale_losses)
        # the data sampler: its state is the data position
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        # every metric reported, so a resumed run keeps its whole curve
        self.history: list[dict[str, Any]] = []
        self.wrapped = wrapped
        self.forward = torch.compile(wrapped) if cfg.compile else wrapped
        torch.manual_seed(cfg.seed)  # dropout
        if not resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            raise FileExistsError(f"{self.out_dir} already holds a checkpoint: pass resume=True "
                                  "(--resume) to continue it, or choose another folder")
        if resume:
            self._resume()
        elif self.is_main and self.out_dir is not None:
            # a new run: the metrics of one that crashed before its first checkpoint go
            (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT

    def state(self) -> dict[str, Any]:
        """Everything a resume needs. Under fsdp every process must call it; only rank 0 gets the
        weights."""
        if self.engine is not None:  # AdamW's state stays in DeepSpeed's shards (see save)
            weights, moments = deepspeed_engine.full_weights(self.engine, self.dist), {}
        else:
            weights, moments = full_state(self.model, self.optimizer, self.dist, self.param_names)
        return {
            "model": weights, "optimizer": moments,
            "scaler": self.scaler.state_dict(), "step": self.step,
            "data_rng": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "train_config": self.cfg.as_dict(), "history": self.history,
            "model_config": _plain(getattr(self.model, "cfg", None)),
        }

    def save(self) -> Path:
        if self.checkpoint_path is None:
            raise ValueError("this trainer has no out_dir to save checkpoints in")
        state = self.state()
        if self.engine is not None:
            state["deepspeed"] = deepspeed_engine.save_shards(self.engine, self.out_dir, self.step)
        if self.is_main:
            save_checkpoint(self.checkpoint_path, state)
            if self.engine is not None:  # only now that checkpoint.pt names the new shards
                deepspeed_engine.remove_old_shards(self.out_dir, keep=state["deepspeed"]["tag"])
        barrier(self.dist)  # no process reads or moves on before the file is whole
        return self.checkpoint_path

    def _resume(self) -> None:
        if self.checkpoint_path is None:
            raise ValueError("resume=True needs the out_dir that holds the checkpoint")
        # on the CPU: the RNG states must stay CPU tensors, and loading the state dicts copies every
        # weight and moment to its parameter's device
        state = load_checkpoint(self.checkpoint_path)
        # a larger budget may continue a run (its schedule then stretches); nothing else may change
        saved_config = {**state["train_config"], "max_steps": self.cfg.max_steps}
        if self.cfg.max_steps < state["train_config"]["max_steps"]:
            raise CheckpointError(f"{self.checkpoint_path} was a run of "
                                  f"{state['train_config']['max_steps']} steps: a resume may "
                                  f"grow its budget, not cut it to {self.cfg.max_steps} (stop "
                                  "early with fit(stop_after=...) instead)")
        changed = config_differences(saved_config, self.cfg.as_dict())
        saved_model = state["model_config"] or {}
        current_model = _plain(getattr(self.model, "cfg", None)) or {}
        changed += [f"model.{d}" for d in config_differences(saved_model, current_model)]
        if changed:
            fields = "\n  ".join(changed)
            raise CheckpointError(f"{self.checkpoint_path} was written with another config; to "
                                  "resume, use the saved one. Fields that differ "
                                  f"(saved -> now):\n  {fields}")
        if "deepspeed" in state and self.engine is None:
            saved = state["deepspeed"]
            raise CheckpointError(f"{self.checkpoint_path} keeps AdamW's state in DeepSpeed's "
                                  "shards: resume it with torchrun --nproc-per-node "
                                  f"{saved['world_size']} and --strategy deepspeed "
                                  f"(ZeRO stage {saved['stage']})")
        if self.engine is not None:
            if "deepspeed" not in state:
                raise CheckpointError(f"{self.checkpoint_path} was not written by a DeepSpeed run: "
                                      "resume it with the strategy that wrote it")
            deepspeed_engine.load_shards(self.engine, self.out_dir, state["deepspeed"])
        else:
            load_full_state(self.model, self.optimizer, state["model"], state["optimizer"],
                            self.dist, self.param_names)
        self.scaler.load_state_dict(state["scaler"])
        self.generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.history = state["step"], list(state["history"])
        if self.is_main and self.out_dir is not None:
            # the metrics written after the checkpoint, by a run that then crashed, are redone
            lines = "".join(json.dumps(m) + "\n" for m in self.history)
            (self.out_dir / "metrics.jsonl").write_text(lines)

    # --- metrics ----------------------------------------------------------------------------

    def _report(self, metrics: dict[str, Any]) -> None:
        self.history.append(metrics)
        if not self.is_main:  # rank 0 alone writes and draws
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        for callback in self.callbacks:
            callback(metrics)

    def _autocast(self):
        if self.engine is not None:  # DeepSpeed casts the model itself
            return contextlib.nullcontext()
        return autocast(self.precision, self.device)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss over the same `eval_batches` validation windows every time (a fixed seed), and
        bits per byte."""
        if self.val_tokens is None:
            raise ValueError("no validation tokens were given")
        was_training = self.model.training
        self.model.eval()
        generator = torch.Generator().manual_seed(10_000 + self.cfg.seed)
        summed = counted = torch.zeros((), device=self.device)
        for _ in range(self.cfg.eval_batches):
            x, y, extra = self._batch(self.val_tokens, generator)
            count = self._targets_in(y)
            with self._autocast():
                loss = self.forward(x, y, **extra)[1].float()
            summed, counted = summed + loss * count, counted + count
        measured = self._objective_metrics("val_")
        self.model.train(was_training)
        # the mean over every target of every batch, on all processes
        loss = (sum_over_ranks(summed, self.dist) / sum_over_ranks(counted, self.dist)).item()
        out = {"val_loss": loss, **measured}
        if self.bytes_per_token:
            out["val_bpb"] = bits_per_byte(loss, self.bytes_per_token)
        return out

    # --- the loop ---------------------------------------------------------------------------

    def _batch(self, data, generator: torch.Generator) -> Batch:
        """(ids, targets, the model's other arguments) on the device: windows at random offsets of a
        token array (pretraining), or examples from a source with a `sample` method (fine-tuning:
        padded or packed, with their attention mask and positions)."""
        if hasattr(data, "sample"):
            batch = data.sample(self.cfg.batch_size, generator, self.rows)
            extra = {"mask": batch.mask.to(self.device),
                     "positions": batch.positions.to(self.device)}
            if getattr(batch, "reference", None) is not None:  # preference pairs (DPO)
                extra["reference"] = batch.reference.to(self.device)
            return batch.ids.to(self.device), batch.targets.to(self.device), extra
        x, y = random_batch(data, self.cfg.batch_size, self.cfg.context_length, generator,
                            self.rows)
        return x.to(self.device), y.to(self.device), {}

    def _targets_in(self, targets: torch.Tensor) -> torch.Tensor:
        """How many targets a batch's loss is the mean over: its tokens that count, or what an
        objective with a loss of its own says (DPO's is a mean over pairs)."""
        count = getattr(self.model, "loss_count", None)
        return count(targets) if callable(count) else (targets != IGNORE).sum()

    def _micro_batches(self) -> tuple[list[Batch], list[torch.Tensor]]:
        """The step's micro-batches, and the weight of each one's mean loss: its share of the
        targets of the whole step, over every process. Each micro-batch's loss is a mean over its
        own targets; weighted so, the step's loss is the mean over all of them however they fall
        into micro-batches and processes (masked answers vary in length). transformers fixed the
        same bug in 4.46 (`num_items_in_batch`)."""
        batches = [self._batch(self.train_tokens, self.generator)
                   for _ in range(self.cfg.grad_accum)]
        counts = [self._targets_in(y).float() for _, y, _ in batches]
        step_total = sum_over_ranks(torch.stack(counts).sum(), self.dist)
        # data parallelism averages the processes' gradients: each carries world_size times its
        # share, so that the average is the sum
        world = self.dist.world_size if self.dist is not None else 1
        return batches, [count * world / step_total for count in counts]

    def train_step(self) -> dict[str, float]:
        """One optimizer step over grad_accum micro-batches; returns its loss, gradient norm and
        learning rate."""
        cfg = self.cfg
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.engine is not None:
            return self._deepspeed_step(lr)
        batches, weights = self._micro_batches()
        total = torch.zeros((), device=self.device)
        for micro, ((x, y, extra), weight) in enumerate(zip(batches, weights, strict=True)):
            # data parallelism averages gradients over processes once, in the last backward pass
            with gradient_sync(self.wrapped, self.dist, enabled=micro == cfg.grad_accum - 1):
                with self._autocast():
                    _, loss = self.forward(x, y, **extra)
                loss = loss * weight
                self.scaler.scale(loss).backward()
            total += loss.detach().float()
        # the whole batch's loss, the same on every process
        loss_value = mean_over_ranks(total, self.dist).item()
        # each process's loss on its own rows: the curves of the ranks, which average to loss_value
        rank_losses = gather_values(total, self.dist) if self.dist is not None else None
        if not math.isfinite(loss_value):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self._diverged_message(f"the loss became {loss_value}"))
        self.scaler.unscale_(self.optimizer)
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
        grad_norm = full_norm(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        # fp16's scaler skips such steps itself
        if not math.isfinite(grad_norm) and not self.scaler.is_enabled():
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self._diverged_message(f"the gradient norm became {grad_norm}"))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        metrics = {"loss": loss_value, "grad_norm": grad_norm, "lr": lr,
                   **self._objective_metrics()}
        if rank_losses is not None:
            metrics["rank_losses"] = rank_losses
        return metrics

    def _deepspeed_step(self, lr: float) -> dict[str, float]:
        """train_step under DeepSpeed: engine.step() after every backward, which steps AdamW only on
        the last micro-batch (after averaging, clipping and, in fp16, unscaling)."""
        cfg = self.cfg
        batches, weights = self._micro_batches()
        total = torch.zeros((), device=self.device)
        for micro, ((x, y, extra), weight) in enumerate(zip(batches, weights, strict=True)):
            _, loss = self.engine(x, y, **extra)
            loss = loss * weight
            self.engine.backward(loss * cfg.grad_accum)  # it divides by the accumulation steps
            total += loss.detach().float()
            if micro < cfg.grad_accum - 1:
                self.engine.step()
        loss_value = mean_over_ranks(total, self.dist).item()
        rank_losses = gather_values(total, self.dist)
        if not math.isfinite(loss_value):
            raise TrainingDiverged(self._diverged_message(f"the loss became {loss_value}"))
        self.engine.step()
        grad_norm = float(self.engine.get_global_grad_norm())
        # fp16's loss scaler skips such steps
        if not math.isfinite(grad_norm) and self.precision != "fp16":
            raise TrainingDiverged(self._diverged_message(f"the gradient norm became {grad_norm}"))
        self.step += 1
        return {"loss": loss_value, "grad_norm": grad_norm, "lr": lr, "rank_losses": rank_losses}

    def _objective_metrics(self, prefix: str = "") -> dict[str, float]:
        """What a model that computes its own objective (DPO's) measured since it was last asked,
        such as rewards and accuracies: reported beside the loss, so that the curves show them
        too."""
        report = getattr(self.model, "step_metrics", None)
        return {prefix + k: v for k, v in report().items()} if callable(report) else {}

    def _diverged_message(self, what: str) -> str:
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            kept = f"the last good checkpoint, {self.checkpoint_path}, is kept"
        else:
            kept = "no checkpoint was written"
        return (f"{what} at step {self.step}: training stopped ({kept}). Usual causes: a learning "
                "rate too high for this model (try lr / 3), no warmup, no gradient clipping, or "
                "fp16 without a grad scaler.")

    def fit(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train to cfg.max_steps (or stop after `stop_after` more steps, saving a checkpoint: a run
        to resume). Ctrl-C finishes the current step, saves a checkpoint and raises
        KeyboardInterrupt. Returns the history."""
        cfg = self.cfg
        end = cfg.max_steps if stop_after is None else min(cfg.max_steps, self.step + stop_after)
        interrupted = threading.Event()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
        self.model.train()
        bar = progress_bar(None, self.progress, total=cfg.max_steps, initial=self.step,
                           desc="training", dynamic_ncols=True)
        try:
            while self.step < end and not any_rank(interrupted.is_set(), self.dist):
                start = time.perf_counter()
                metrics = self.train_step()
                elapsed = time.perf_counter() - start
                metrics.update(kind="train", step=self.step, tokens=self.step * cfg.tokens_per_step,
                               tokens_per_s=cfg.tokens_per_step / elapsed)
                self._report(metrics)
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}",
                                tok_s=f"{metrics['tokens_per_s']:.0f}")
                last = self.step == cfg.max_steps
                eval_due = cfg.eval_every and self.step % cfg.eval_every == 0
                if self.val_tokens is not None and (eval_due or last):
                    self._report({"kind": "eval", "step": self.step,
                                  "tokens": self.step * cfg.tokens_per_step, **self.evaluate()})
                save_due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                if self.out_dir is not None and save_due:
                    self.save()
            if self.out_dir is not None:
                self.save()
        finally:
            bar.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        if any_rank(interrupted.is_set(), self.dist):
            saved = f"; checkpoint saved to {self.checkpoint_path}" if self.out_dir else ""
            raise KeyboardInterrupt(f"interrupted at step {self.step}" + saved)
        return self.history


def seconds_per_step(model: torch.nn.Module, train_data: Any, cfg: TrainConfig,
                     device: torch.device | str | None = None, steps: int = 3) -> float:
    """Seconds per optimizer step of `cfg` on this machine: `steps` steps of a throwaway copy of
    `model`, timed after one warm-up step. A budget in minutes, and the time a stage model will
    take, are planned from it."""
    short = cfg.replace(max_steps=steps + 1, warmup_steps=1)
    probe = Trainer(copy.deepcopy(model), train_data, None, short, progress=False, device=device)
    probe.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        probe.train_step()
    return (time.perf_counter() - start) / steps


def announce(what: str, model: torch.nn.Module, train_data: Any, cfg: TrainConfig,
             device: torch.device | str | None = None, enabled: bool = True) -> None:
    """Say, before a stage model that this machine has not cached trains, how long it will take
    here (timed on a few steps of a copy). Silent where progress bars are off (a book build,
    TQDM_DISABLE=1)."""
    if not bars_on(enabled):
        return
    seconds = seconds_per_step(model, train_data, cfg, device) * cfg.max_steps
    print(f"Training {what} once on this machine ({cfg.max_steps:,} steps): about {seconds:.0f} s "
          f"here; it is cached for every later chapter.", flush=True)


def _plain(cfg: Any) -> dict[str, Any] | None:
    """A config dataclass as a dict of plain values (what weights_only checkpoints may hold)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None
