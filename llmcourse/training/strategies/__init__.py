"""Ways of running the trainer's loop: one process, or data parallelism over processes that
torchrun starts (ddp, zero1, fsdp, deepspeed). Each is one module behind the interface of
`single.OneProcess`.

    >>> sorted(BY_NAME)
    ['ddp', 'deepspeed', 'fsdp', 'zero1']
"""

from __future__ import annotations

import torch

from llmcourse.training.config import TrainConfig
from llmcourse.training.distributed import Distributed
from llmcourse.training.strategies.ddp import DDP
from llmcourse.training.strategies.deepspeed import DeepSpeed
from llmcourse.training.strategies.fsdp import FSDP
from llmcourse.training.strategies.single import OneProcess
from llmcourse.training.strategies.zero1 import Zero1

BY_NAME = {"ddp": DDP, "zero1": Zero1, "fsdp": FSDP, "deepspeed": DeepSpeed}


def make_strategy(model: torch.nn.Module, cfg: TrainConfig, precision: str,
                  device: torch.device, info: Distributed | None) -> OneProcess:
    """The strategy `info` names (one process where it is None), wrapping `model`."""
    kind = OneProcess if info is None else BY_NAME[info.strategy]
    return kind(model, cfg, precision, device, info)


__all__ = ["BY_NAME", "DDP", "FSDP", "DeepSpeed", "OneProcess", "Zero1", "make_strategy"]
