"""AdamW with two parameter groups: weight decay on the matrices, none on norms, biases and
embeddings.

Decay pulls weights toward zero. On a matrix that multiplies activations it limits how large its
outputs can grow; a norm's gain or a bias is a single scale or offset per channel, and pulling it
toward zero only fights the normalisation (a gain of 0 switches the channel off). Embeddings are
rows looked up, each updated only when its token occurs: decaying every row at every step would
shrink the rare tokens' rows for nothing. (With tied embeddings the one matrix is also the LM head;
it follows the embedding rule, as in nanoGPT's successors.)

>>> from llmcourse.model.config import get_preset
>>> from llmcourse.model.gpt import GPT
>>> decay, no_decay = param_groups(GPT(get_preset("tiny", n_layer=1)), weight_decay=0.1)
>>> len(decay["params"]), len(no_decay["params"]), no_decay["weight_decay"]
(4, 12, 0.0)
"""
from __future__ import annotations

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """[decayed, not decayed] parameter groups: Linear weights decay; everything else does
    not."""
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # parameters() yields a tied matrix once
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if id(p) in decayed and id(p) not in embeddings else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float,
                   betas: tuple[float, float] = (0.9, 0.95), device: torch.device | None = None,
                   sharded: bool = False) -> torch.optim.Optimizer:
    """AdamW over `param_groups`, with the fused kernel on CUDA and on the CPU: one kernel for all
    parameters. torch's default on the CPU steps each parameter in a Python loop of a dozen small
    operations, which costs a small model about 5 % of its step. sharded: each process keeps the
    state of its share of the parameters (ZeRO-1, `llmcourse.training.zero`)."""
    fused = torch.device(device if device is not None else "cpu").type in ("cuda", "cpu")
    groups = param_groups(model, weight_decay)
    if sharded:
        from llmcourse.training.zero import ShardedOptimizer

        return ShardedOptimizer(groups, torch.optim.AdamW, lr=lr, betas=betas, fused=fused)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=fused)
