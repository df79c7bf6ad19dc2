"""deepspeed: DeepSpeed's ZeRO, stages 1 to 3, from a config file (an optional extra).

The engine wraps the model and the trainer's own AdamW (`llmcourse.training.deepspeed_engine`
fills the config in from the command line). It casts the model to bf16 or fp16 itself, scales
fp16 losses, accumulates, clips and steps: `engine.step()` after every backward pass steps AdamW
only at the last micro-batch. A checkpoint holds the gathered fp32 weights beside DeepSpeed's
own shards, which keep AdamW's state.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.training import deepspeed_engine
from llmcourse.training.strategies.single import OneProcess


class DeepSpeed(OneProcess):
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model  # the engine wraps it with the optimizer, once that exists (below)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        config = deepspeed_engine.deepspeed_config(self.info.deepspeed_config, self.cfg,
                                                   self.info, self.precision, self.device)
        self.engine = deepspeed_engine.initialize(self.model, self.optimizer, config, self.device)
        self.wrapped = self.engine
        self.optimizer = self.engine.optimizer  # where the schedule sets the learning rate
        # the engine scales fp16 losses itself
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)

    def compiled(self) -> torch.nn.Module:
        self.engine.compile()  # compiles the module inside, under ZeRO's hooks
        return self.engine

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # the engine holds the model in bf16 or fp16

    def backward(self, loss: torch.Tensor, last: bool) -> None:
        # the engine divides each micro-batch's loss by the accumulation steps; the trainer's
        # weights already make the step's loss a mean
        self.engine.backward(loss * self.cfg.grad_accum)
        if not last:
            self.engine.step()  # counts the micro-batch; AdamW steps only at the last

    def clip_and_step(self, max_norm: float) -> float:
        self.engine.step()  # clipping at the config's gradient_clipping (the preset's)
        return float(self.engine.get_global_grad_norm())

    def zero_grad(self) -> None:
        pass  # the engine clears its gradients at each step

    def full_state(self) -> dict[str, Any]:
        weights = deepspeed_engine.full_weights(self.engine, self.info)  # fp32 masters
        return {"model": weights, "optimizer": {}, "scaler": self.scaler.state_dict()}

    def save_shards(self, run_dir: Path, step: int) -> dict[str, Any]:
        return {"deepspeed": deepspeed_engine.save_shards(self.engine, run_dir, step)}

    def saved(self, run_dir: Path, state: dict[str, Any]) -> None:
        # only now that checkpoint.pt names the new shards may the old ones go
        deepspeed_engine.remove_old_shards(run_dir, keep=state["deepspeed"]["tag"])

    def load_state(self, state: dict[str, Any], run_dir: Path) -> None:
        if "deepspeed" not in state:
            raise CheckpointError(f"{run_dir} was not written by a DeepSpeed run: resume it "
                                  "with the strategy that wrote it")
        deepspeed_engine.load_shards(self.engine, run_dir, state["deepspeed"])
        self.scaler.load_state_dict(state["scaler"])
