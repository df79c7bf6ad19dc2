"""zero1: DDP's gradients, with AdamW's state sharded over the processes.

Each process updates only its share of the parameters and broadcasts them to the others
(`llmcourse.training.zero.ShardedOptimizer`, ZeRO stage 1 written out). A checkpoint gathers
the shards into the state an unsharded AdamW would have, so a zero1 run resumes on any strategy.
"""

from __future__ import annotations

from typing import Any

from llmcourse.training.strategies.ddp import DDP


class Zero1(DDP):
    sharded_optimizer = True

    def full_state(self) -> dict[str, Any]:
        moments = self.optimizer.consolidated_state_dict()  # every process takes part
        state = super().full_state() if self.is_main else {"model": {}, "scaler": {}}
        return {**state, "optimizer": moments}

    def load_weights_and_moments(self, weights: dict[str, Any], moments: dict[str, Any]) -> None:
        self.model.load_state_dict(weights)
        self.optimizer.load_consolidated_state_dict(moments)  # each keeps its share
