"""ddp: a whole copy of the model in every process, the gradients averaged over them.

`DistributedDataParallel` all-reduces each bucket of gradients as the backward pass produces
it, so the communication overlaps the computation. Under accumulation, `no_sync` skips that for
all but the last micro-batch: the gradients add up locally and are averaged once.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.parallel import DistributedDataParallel

from llmcourse.training.strategies.single import OneProcess


class DDP(OneProcess):
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        # on CUDA each process drives its own GPU; on the CPU gloo needs no device ids
        device_ids = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext() if last else self.wrapped.no_sync()
