"""fsdp: FSDP2's `fully_shard` shards the parameters, gradients and AdamW's moments.

Each block is sharded on its own, then the whole model: a block's full weights are gathered
(all-gather) just before its forward and its backward and freed after, so only one block's exist
at a time; its gradients are reduce-scattered, each process keeping its shard. AdamW then steps
each process's shards. `set_requires_gradient_sync(False)` keeps the gradients of all but the
last micro-batch unreduced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from llmcourse.training.strategies.single import OneProcess


class FSDP(OneProcess):
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.distributed.fsdp import fully_shard

        from llmcourse.model.gpt import Block

        # found among the modules, so that an objective wrapping the model (DPO's) shards alike
        for block in [m for m in model.modules() if isinstance(m, Block)]:
            fully_shard(block)
        fully_shard(model)
        return model  # sharded in place

    @contextlib.contextmanager
    def no_sync(self, last: bool) -> Iterator[None]:
        self.wrapped.set_requires_gradient_sync(last)
        try:
            yield
        finally:
            self.wrapped.set_requires_gradient_sync(True)

    def full_state(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        # gathered from every process's shards onto rank 0's CPU
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights, moments = get_state_dict(self.model, self.optimizer, options=options)
        if not self.is_main:
            return {"model": {}, "optimizer": {}, "scaler": {}}
        # torch names AdamW's entries by parameter; the single-process format numbers them
        index = {name: i for i, name in enumerate(self.param_names)}
        moments = _renamed(moments, lambda name: index[name])
        return {"model": weights, "optimizer": moments, "scaler": self.scaler.state_dict()}

    def load_weights_and_moments(self, weights: dict[str, Any], moments: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        named = _renamed(moments, lambda i: self.param_names[i])
        # every process reads the whole state and keeps its shards
        set_state_dict(self.model, self.optimizer, model_state_dict=weights,
                       optim_state_dict=named, options=StateDictOptions(full_state_dict=True))


def _renamed(moments: dict[str, Any], key: Any) -> dict[str, Any]:
    """An optimizer state dict with each parameter's key mapped by `key`."""
    return {"state": {key(k): value for k, value in moments["state"].items()},
            "param_groups": [{**g, "params": [key(k) for k in g["params"]]}
                             for g in moments["param_groups"]]}
