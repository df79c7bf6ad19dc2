"""Data parallelism on torch.distributed: the trainer's steps spread over processes that torchrun
starts.

    torchrun --nproc-per-node 2 -m llmcourse train --strategy ddp    # or zero1, fsdp, deepspeed

gloo carries the collectives on CPUs, NCCL on GPUs. This module joins the process group and
holds the collectives the trainer needs; each way of spreading the work (ddp, zero1, fsdp,
deepspeed) is a module of `llmcourse.training.strategies`.

- **The data.** Every process seeds the data sampler alike, so each draws the same window offsets
  for the global micro-batch and reads only its own rows (`random_batch(..., rows=...)`):
  together they see exactly the batch a single process would, and the sampler's state stays one
  number to checkpoint.
- **Rank 0 alone prints and writes.** Checkpoints hold the full (gathered) state in the
  single-process format, so a run resumes on any number of processes.
- **Failures end the run.** When a process raises, torchrun stops the others; a collective whose
  peer died fails instead of waiting (gloo sees the closed connection), and every collective has
  a timeout.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

from llmcourse.device import pick_device

Strategy = Literal["ddp", "fsdp", "zero1", "deepspeed"]
STRATEGIES = ("ddp", "fsdp", "zero1", "deepspeed")
TIMEOUT = datetime.timedelta(minutes=5)  # a collective that waits longer than this fails


@dataclass(frozen=True)
class Distributed:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    strategy: Strategy = "ddp"
    deepspeed_config: str | None = None  # deepspeed: a shipped config's name or a JSON file

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if (self.strategy == "deepspeed") != (self.deepspeed_config is not None):
            raise ValueError("--strategy deepspeed goes with --deepspeed-config (zero1, zero2, "
                             "zero3 or a JSON file), and --deepspeed-config with --strategy "
                             "deepspeed alone")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch of `batch_size` sequences."""
        if batch_size < self.world_size:
            raise ValueError(f"{self.world_size} processes but {batch_size} sequences per "
                             "micro-batch: every process needs rows of its own. Use --batch-size "
                             f"{self.world_size} or more (a multiple of {self.world_size}), or "
                             "fewer processes")
        if batch_size % self.world_size:
            raise ValueError(f"a batch of {batch_size} sequences does not split evenly over "
                             f"{self.world_size} processes: pick a batch size that "
                             f"{self.world_size} divides")
        per = batch_size // self.world_size
        return slice(self.rank * per, (self.rank + 1) * per)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(
    strategy: Strategy = "ddp", device: str | None = None, deepspeed_config: str | None = None
) -> tuple[Distributed | None, torch.device]:
    """Join the process group that torchrun set up (None when this is a single process), and pick
    the device: each process its own GPU (LOCAL_RANK) with NCCL, else the CPU with gloo."""
    if not launched_by_torchrun():
        return None, pick_device(device)
    info = Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                       int(os.environ["LOCAL_RANK"]), strategy, deepspeed_config)
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(chosen)
    elif chosen.type != "cpu":
        raise RuntimeError("distributed training runs on CUDA (NCCL) or the CPU (gloo), "
                           f"not {chosen.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo", timeout=TIMEOUT)
    return info, chosen


def collective_device(backend: str, local_rank: int) -> torch.device:
    """Where a collective's tensors must live: NCCL reduces only CUDA tensors (this process's GPU),
    gloo only CPU ones.

    >>> collective_device("gloo", 1), collective_device("nccl", 1)
    (device(type='cpu'), device(type='cuda', index=1))
    """
    return torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")


def _on_group_device(value: torch.Tensor, info: Distributed) -> torch.Tensor:
    """A copy of `value` that the process group's backend can reduce."""
    device = collective_device(dist.get_backend(), info.local_rank)
    return value.detach().to(device, copy=True)


def sum_over_ranks(value: torch.Tensor, info: Distributed | None) -> torch.Tensor:
    """The sum of `value` over all processes (every process gets it), on `value`'s device."""
    if info is None:
        return value
    total = _on_group_device(value, info)
    dist.all_reduce(total)
    return total.to(value.device)


def gather_values(value: torch.Tensor, info: Distributed) -> list[float]:
    """Every process's scalar `value`, in rank order, on every process."""
    mine = _on_group_device(value, info)
    values = [torch.zeros_like(mine) for _ in range(info.world_size)]
    dist.all_gather(values, mine)
    return [v.item() for v in values]


def any_rank(flag: bool, info: Distributed | None) -> bool:
    """True on every process if `flag` is true on any (so that all stop at the same step)."""
    if info is None:
        return flag
    value = _on_group_device(torch.tensor(int(flag)), info)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def same_on_all_ranks(value: int, info: Distributed | None) -> int:
    """Rank 0's `value`, on every process."""
    if info is None:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def parameter_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each parameter in the optimizer's order: what the single-process state dict's
    indices mean. Call it when the optimizer is made: under fsdp the module holds other tensors
    between forward and backward."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def barrier(info: Distributed | None) -> None:
    if info is not None:
        dist.barrier()


def shutdown(info: Distributed | None) -> None:
    if info is not None and dist.is_initialized():
        # Free the engines this process made while their process group still exists: DeepSpeed's
        # ZeRO-3 keeps collectives in flight, and engines freed at interpreter exit, after the
        # group is gone, make gloo abort the process.
        gc.collect()
        engines = sys.modules.get("llmcourse.training.deepspeed_engine")  # imported only if used
        if engines is not None:
            engines.release_engines()
        dist.destroy_process_group()
