"""The trainer: the loop of chapter "Pretraining" with every feature a long run needs, each there
for a reason.

    cfg = get_train_preset("course")
    trainer = Trainer(model, train_tokens, val_tokens, cfg, out_dir="runs/course")
    trainer.fit()  # or trainer.fit(stop_after=100), then a new Trainer(..., resume=True).fit()

One optimizer step: the learning rate from the schedule; for each of `grad_accum` micro-batches,
forward under autocast and backward, its loss weighted by its share of the step's targets (the
gradients add up to those of the whole batch); then a finite-loss check, clipping by the global
norm and the AdamW step. Where the run happens (one process, or data parallelism under torchrun)
is the strategy's business (`llmcourse.training.strategies`), and what the loss is the model's:
the loop is the same for pretraining, fine-tuning and DPO. Metrics go to callbacks as plain
dicts: the trainer knows nothing of plots, so a notebook widget, a JSONL file and a progress bar
all subscribe the same way.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmcourse.foundations.loss import bits_per_byte
from llmcourse.model.gpt import IGNORE
from llmcourse.progress import progress_bar
from llmcourse.training.checkpoint import (
    load_checkpoint,
    plain_config,
    refuse_other_run,
    save_checkpoint,
)
from llmcourse.training.config import TrainConfig
from llmcourse.training.data import Batch, sample_batch
from llmcourse.training.distributed import Distributed
from llmcourse.training.precision import resolve_precision
from llmcourse.training.schedule import lr_at
from llmcourse.training.strategies import make_strategy

Callback = Callable[[dict[str, Any]], None]
CHECKPOINT = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being a finite number."""


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
        self.model = model.to(self.device)
        if cfg.activation_checkpointing:
            if not hasattr(model, "checkpoint_blocks"):
                raise ValueError("activation_checkpointing needs a model with blocks to checkpoint "
                                 f"(llmcourse's GPT), got {type(model).__name__}")
            model.checkpoint_blocks = True
        self.precision = resolve_precision(cfg.precision, self.device)
        # everything that depends on where the run happens: one process, ddp, zero1, fsdp or
        # deepspeed (llmcourse.training.strategies)
        self.strategy = make_strategy(self.model, cfg, self.precision, self.device, distributed)
        self.optimizer = self.strategy.optimizer
        self.rows = self.strategy.rows(cfg.batch_size)
        self.is_main = self.strategy.is_main
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks, self.bytes_per_token = list(callbacks), bytes_per_token
        self.progress = progress and self.is_main
        # the data sampler: its state is the data position
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        # every metric reported, so a resumed run keeps its whole curve
        self.history: list[dict[str, Any]] = []
        # what forward runs on: the model, or its wrapper
        self.forward = self.strategy.compiled() if cfg.compile else self.strategy.wrapped
        torch.manual_seed(cfg.seed)  # dropout
        if not resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            raise FileExistsError(f"{self.out_dir} already holds a checkpoint: pass resume=True "
                                  "(--resume) to continue it, or choose another folder")
        if resume:
            self._resume()
        elif self.is_main and self.out_dir is not None:
            # a new run: the metrics of one that crashed before its first checkpoint go
            (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)

    # --- the loop ---------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One optimizer step over grad_accum micro-batches; returns its loss, gradient norm and
        learning rate."""
        cfg, strategy = self.cfg, self.strategy
        lr = lr_at(self.step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batches, weights = self._micro_batches()
        total = torch.zeros((), device=self.device)
        for micro, ((x, y, extra), weight) in enumerate(zip(batches, weights, strict=True)):
            last = micro == cfg.grad_accum - 1
            # data parallelism averages gradients over processes once, in the last backward pass
            with strategy.no_sync(last):
                with strategy.autocast():
                    _, loss = self.forward(x, y, **extra)  # the mean over x's targets
                loss = loss * weight
                strategy.backward(loss, last)
            total += loss.detach().float()
        # the whole batch's loss, the same on every process
        loss_value = (strategy.sum(total) / strategy.world_size).item()
        if not math.isfinite(loss_value):
            strategy.zero_grad()
            raise TrainingDiverged(self._diverged_message(f"the loss became {loss_value}"))
        max_norm = cfg.grad_clip if cfg.grad_clip is not None else float("inf")
        grad_norm = strategy.clip_and_step(max_norm)
        # fp16's loss scaler skips such steps itself
        if not math.isfinite(grad_norm) and self.precision != "fp16":
            raise TrainingDiverged(self._diverged_message(f"the gradient norm became {grad_norm}"))
        self.step += 1
        metrics = {"loss": loss_value, "grad_norm": grad_norm, "lr": lr,
                   **self._objective_metrics()}
        rank_losses = strategy.gather(total)  # one per process: they average to the loss
        if rank_losses is not None:
            metrics["rank_losses"] = rank_losses
        return metrics

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
            while self.step < end and not self.strategy.any(interrupted.is_set()):
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
        if self.strategy.any(interrupted.is_set()):
            saved = f"; checkpoint saved to {self.checkpoint_path}" if self.out_dir else ""
            raise KeyboardInterrupt(f"interrupted at step {self.step}" + saved)
        return self.history

    # --- batches ----------------------------------------------------------------------------

    def _batch(self, data: Any, generator: torch.Generator) -> Batch:
        return sample_batch(data, self.cfg.batch_size, self.cfg.context_length, generator,
                            self.rows, self.device)

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
        # at least 1: a step with no targets at all (every answer cut away) weighs nothing
        step_total = self.strategy.sum(torch.stack(counts).sum()).clamp(min=1)
        # data parallelism averages the processes' gradients: each carries world_size times its
        # share, so that the average is the sum
        return batches, [count * self.strategy.world_size / step_total for count in counts]

    # --- metrics ----------------------------------------------------------------------------

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
            with self.strategy.autocast():
                loss = self.forward(x, y, **extra)[1].float()
            summed, counted = summed + loss * count, counted + count
        measured = self._objective_metrics("val_")
        self.model.train(was_training)
        # the mean over every target of every batch, on all processes
        loss = (self.strategy.sum(summed) / self.strategy.sum(counted)).item()
        out = {"val_loss": loss, **measured}
        if self.bytes_per_token:
            out["val_bpb"] = bits_per_byte(loss, self.bytes_per_token)
        return out

    def _objective_metrics(self, prefix: str = "") -> dict[str, float]:
        """What a model that computes its own objective (DPO's) measured since it was last asked,
        such as rewards and accuracies: reported beside the loss, so that the curves show them
        too."""
        report = getattr(self.model, "step_metrics", None)
        return {prefix + k: v for k, v in report().items()} if callable(report) else {}

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

    def _diverged_message(self, what: str) -> str:
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            kept = f"the last good checkpoint, {self.checkpoint_path}, is kept"
        else:
            kept = "no checkpoint was written"
        return (f"{what} at step {self.step}: training stopped ({kept}). Usual causes: a learning "
                "rate too high for this model (try lr / 3), no warmup, no gradient clipping, or "
                "fp16 without a grad scaler.")

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / CHECKPOINT

    def state(self) -> dict[str, Any]:
        """Everything a resume needs. Every process must call it; under a sharded strategy only
        rank 0 gets the weights."""
        return {
            **self.strategy.full_state(), "step": self.step,
            "data_rng": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "train_config": self.cfg.as_dict(), "history": self.history,
            "model_config": plain_config(getattr(self.model, "cfg", None)),
        }

    def save(self) -> Path:
        if self.checkpoint_path is None:
            raise ValueError("this trainer has no out_dir to save checkpoints in")
        state = {**self.state(), **self.strategy.save_shards(self.out_dir, self.step)}
        if self.is_main:
            save_checkpoint(self.checkpoint_path, state)
            self.strategy.saved(self.out_dir, state)
        self.strategy.barrier()  # no process reads or moves on before the file is whole
        return self.checkpoint_path

    def _resume(self) -> None:
        if self.checkpoint_path is None:
            raise ValueError("resume=True needs the out_dir that holds the checkpoint")
        # on the CPU: the RNG states must stay CPU tensors, and loading the state dicts copies every
        # weight and moment to its parameter's device
        state = load_checkpoint(self.checkpoint_path)
        model_config = plain_config(getattr(self.model, "cfg", None))
        refuse_other_run(self.checkpoint_path, state, self.cfg.as_dict(), model_config)
        self.strategy.load_state(state, self.out_dir)
        self.generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        # a GPU run may resume on fewer GPUs, or none: each GPU present takes its saved state
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        for index, cuda_state in enumerate(state["cuda_rng"][:gpus]):
            torch.cuda.set_rng_state(cuda_state, index)
        self.step, self.history = state["step"], list(state["history"])
        if self.is_main and self.out_dir is not None:
            # the metrics written after the checkpoint, by a run that then crashed, are redone
            lines = "".join(json.dumps(m) + "\n" for m in self.history)
            (self.out_dir / "metrics.jsonl").write_text(lines)
