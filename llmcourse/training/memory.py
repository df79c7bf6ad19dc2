"""Where the memory of a training step goes, measured on a real step rather than estimated.

- weights, gradients: the bytes of the parameters (frozen ones too, as under LoRA) and of the
  `.grad` of the trainable ones after a backward pass;
- optimizer: the bytes of AdamW's state after one step (its two moments; the step counters are a
  few bytes);
- activations: the bytes autograd keeps for the backward pass, counted with its own saved-tensor
  hooks, each storage once and the parameters left out (a matrix multiply keeps a reference to
  its weight, which costs nothing more).

`llmcourse.model.sizing.training_memory` estimates the same four numbers from a config alone; the
tests hold the two together.
"""
from __future__ import annotations

import torch

from llmcourse.model.sizing import TrainingMemory


def activation_bytes(model: torch.nn.Module, ids: torch.Tensor, autocast: bool = False) -> int:
    """Bytes that autograd keeps for the backward pass of `model(ids, ids)`, parameters left out."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    device_type = ids.device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(ids, ids)
    return sum(n for ptr, n in saved.items() if ptr not in params)


def measure_training_memory(model: torch.nn.Module, ids: torch.Tensor,
                            autocast: bool = False) -> TrainingMemory:
    """The four parts of a real AdamW training step on the (B, T) batch `ids` (it changes the
    model's weights: pass a copy that you can spare)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params)
    activations = activation_bytes(model, ids, autocast)
    with torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=autocast):
        _, loss = model(ids, ids)
    loss.backward()
    optimizer.step()
    state = [t for p in params for name, t in optimizer.state[p].items() if name != "step"]
    return TrainingMemory(weights=sum(p.nbytes for p in model.parameters()),  # each tied one once
                          gradients=sum(p.grad.nbytes for p in params),
                          optimizer=sum(t.nbytes for t in state), activations=activations)
