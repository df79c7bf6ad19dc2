"""One process, and the seam between the trainer's loop and how a run is spread over devices.

The loop (`llmcourse.training.trainer`) asks a strategy for everything that depends on where it
runs, and for nothing else:

- **wrap**: what forward is called on, and the optimizer (made after wrapping: a sharded model
  has other parameters than the one it wrapped);
- **micro-batches**: this process's rows of a batch, the precision to compute in, a context in
  which a backward pass skips the gradients' sync (every micro-batch but the last), the backward
  pass itself;
- **reduce**: a metric summed over processes, gathered from each, or a flag raised on any;
- **clip and step**: clip the gradients by their global norm, step, and return the norm;
- **checkpoints**: the full state in the single-process format, and loading it back.

This module is the strategy of one process; `ddp`, `zero1`, `fsdp` and `deepspeed` each refine
it in a module of their own. Its collectives are those of `llmcourse.training.distributed`, which
do nothing where there is one process.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch

from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.training.config import TrainConfig
from llmcourse.training.distributed import (
    Distributed,
    any_rank,
    barrier,
    gather_values,
    parameter_names,
    sum_over_ranks,
)
from llmcourse.training.optim import make_optimizer
from llmcourse.training.precision import autocast


class OneProcess:
    """The whole model and its optimizer in this process; gradients stay here."""

    sharded_optimizer = False  # zero1: each process keeps AdamW's state of its share

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig, precision: str,
                 device: torch.device, info: Distributed | None = None) -> None:
        """precision: resolved (fp32, bf16 or fp16). info: this process's place in a torchrun
        launch, None for one process."""
        self.model, self.cfg, self.precision, self.device, self.info = (
            model, cfg, precision, device, info)
        self.world_size = 1 if info is None else info.world_size
        self.is_main = info is None or info.is_main
        self.wrapped = self.wrap(model)  # what forward is called on
        self.optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2),
                                        device, sharded=self.sharded_optimizer)
        # what the single-process state dict's indices mean (read now: fsdp's module holds other
        # tensors between forward and backward)
        self.param_names = parameter_names(model, self.optimizer)
        # fp16 overflows where bf16 does not: its losses are scaled up and its gradients back down
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    # --- wrap ---------------------------------------------------------------------------------

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model

    def compiled(self) -> torch.nn.Module:
        """What forward runs on under `compile`: the wrapped model, compiled."""
        return torch.compile(self.wrapped)

    # --- micro-batches --------------------------------------------------------------------------

    def rows(self, batch_size: int) -> slice | None:
        """This process's rows of a global micro-batch (None: all of them)."""
        return None if self.info is None else self.info.rows(batch_size)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.precision, self.device)

    def no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        """The context of a micro-batch's forward and backward: gradients are synced over
        processes only in the `last` one's."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        self.scaler.scale(loss).backward()

    # --- reduce ---------------------------------------------------------------------------------

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        return sum_over_ranks(value, self.info)

    def gather(self, value: torch.Tensor) -> list[float] | None:
        """Every process's scalar `value` in rank order (None for one process)."""
        return None if self.info is None else gather_values(value, self.info)

    def any(self, flag: bool) -> bool:
        return any_rank(flag, self.info)

    def barrier(self) -> None:
        barrier(self.info)

    # --- clip and step --------------------------------------------------------------------------

    def clip_and_step(self, max_norm: float) -> float:
        """Clip the gradients to `max_norm` (their global norm), step, clear them; returns the norm
        before clipping. A norm that is not finite takes no step: fp16's scaler skips it and lowers
        its scale, and in fp32 and bf16 the loop stops the run."""
        self.scaler.unscale_(self.optimizer)
        norm = _number(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if math.isfinite(norm) or self.scaler.is_enabled():
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.zero_grad()
        return norm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    # --- checkpoints ----------------------------------------------------------------------------

    def full_state(self) -> dict[str, Any]:
        """The weights, AdamW's state and the loss scaler's, in the single-process format (a run
        resumes on any number of processes). Every process calls it; sharded strategies give
        the whole state to rank 0 alone."""
        weights, moments = self.model.state_dict(), self.optimizer.state_dict()
        return {"model": weights, "optimizer": moments, "scaler": self.scaler.state_dict()}

    def save_shards(self, run_dir: Path, step: int) -> dict[str, Any]:
        """What a strategy keeps in files of its own (DeepSpeed's shards); checkpoint.pt records
        the returned entries."""
        return {}

    def saved(self, run_dir: Path, state: dict[str, Any]) -> None:
        """Rank 0, once checkpoint.pt holds `state`: clear what no checkpoint names any more."""

    def load_state(self, state: dict[str, Any], run_dir: Path) -> None:
        """Load a checkpoint's state (read on the CPU by every process)."""
        if "deepspeed" in state:
            saved = state["deepspeed"]
            raise CheckpointError(f"{run_dir} keeps AdamW's state in DeepSpeed's shards: resume "
                                  f"it with torchrun --nproc-per-node {saved['world_size']} and "
                                  f"--strategy deepspeed (ZeRO stage {saved['stage']})")
        self.load_weights_and_moments(state["model"], state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])

    def load_weights_and_moments(self, weights: dict[str, Any], moments: dict[str, Any]) -> None:
        self.model.load_state_dict(weights)
        self.optimizer.load_state_dict(moments)


def _number(norm: torch.Tensor) -> float:
    """The gradient norm clip_grad_norm_ returned, as a number (a DTensor under fsdp)."""
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)
