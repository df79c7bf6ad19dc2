"""Chapter 6's exercises: cross-entropy by hand, the warmup-cosine schedule, clipping by global
norm, gradient accumulation and bits per byte. The references are the package's training code (and
torch's clipping, which the trainer calls)."""
from __future__ import annotations

import torch

from llmcourse.foundations.loss import bits_per_byte, mean_nll
from llmcourse.grading.exercise import (
    Exercise,
    close_to,
    numbered_tensors_close,
    register,
    tensor_close,
)
from llmcourse.training.config import TrainConfig
from llmcourse.training.schedule import lr_at


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return mean_nll(torch.log_softmax(logits.double(), dim=-1), targets).to(logits.dtype)


def _warmup_cosine(step: int, max_steps: int, warmup_steps: int, lr: float,
                   min_lr: float) -> float:
    config = TrainConfig(max_steps=max_steps, warmup_steps=warmup_steps, lr=lr,
                         min_lr_ratio=min_lr / lr, schedule="cosine")
    return lr_at(step, config)


def _clip(grads: list[torch.Tensor], max_norm: float) -> tuple[torch.Tensor, ...]:
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm)  # what the trainer calls
    return tuple(p.grad for p in params)


def _full_batch_gradient(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                         n_micro: int) -> torch.Tensor:
    """The gradient of the mean squared error over the whole batch, by autograd in one pass: what
    accumulating n_micro equal micro-batches must reproduce."""
    w = w.clone().requires_grad_(True)
    ((x @ w - y) ** 2).mean().backward()
    return w.grad


def _g(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


register(Exercise("6.1", "Cross-entropy by hand", "cross_entropy", points=2,
    reference=_cross_entropy, compare=tensor_close(atol=1e-9, rtol=1e-9),
    cases=lambda g: [("8 positions, 10 tokens",
                      (_g(g, 8, 10), torch.randint(0, 10, (8,), generator=g))),
                     ("large logits (use log-sum-exp)",
                      (_g(g, 4, 6) * 500, torch.randint(0, 6, (4,), generator=g))),
                     ("one position", (_g(g, 1, 3), torch.tensor([2])))],
    hint="log-softmax = logits - logsumexp(logits) (subtract the row maximum before exp, or use "
         "torch.logsumexp); pick each row's target entry; the loss is minus their mean.",
))

register(Exercise("6.2", "Warmup then cosine", "warmup_cosine", points=2,
    reference=_warmup_cosine, compare=close_to(rel=1e-9),
    cases=lambda g: [(f"step {s} of 100, warmup 10", (s, 100, 10, 3e-3, 3e-4))
                     for s in (0, 4, 9, 10, 37, 99, 100)]
    + [("no warmup, step 0", (0, 50, 0, 1e-3, 0.0))],
    hint="during warmup: lr * (step + 1) / warmup_steps; after it, "
         "progress = (step - warmup) / (max_steps - warmup), capped at 1, and "
         "lr = min_lr + 0.5 * (1 + cos(pi * progress)) * (lr - min_lr).",
))

register(Exercise("6.3", "Clipping by the global norm", "clip_global_norm", points=2,
    reference=_clip, compare=numbered_tensors_close("gradient", atol=1e-6),
    cases=lambda g: [("three tensors, norm above the limit",
                      ([_g(g, 3, 4), _g(g, 5), _g(g, 2, 2)], 1.0)),
                     ("norm below the limit: unchanged", ([_g(g, 3) * 0.01, _g(g, 2) * 0.01], 1.0)),
                     ("one tensor", ([_g(g, 10) * 5], 0.5))],
    hint="the global norm is sqrt(sum of every entry squared, over all tensors); if it exceeds "
         "max_norm, scale every tensor by max_norm / (norm + 1e-6); return the tensors as a tuple.",
))

register(Exercise("6.4", "Gradient accumulation", "accumulated_gradient", points=3,
    reference=_full_batch_gradient, compare=tensor_close(atol=1e-10, rtol=1e-8),
    cases=lambda g: [(f"batch of 8 in {n} micro-batches", (_g(g, 5), _g(g, 8, 5), _g(g, 8), n))
                     for n in (1, 2, 4)]
    + [("batch of 6 in 3", (_g(g, 3), _g(g, 6, 3), _g(g, 6), 3))],
    hint="split x and y into n_micro equal chunks; for each, loss = mean((x_i @ w - y_i)^2) / "
         "n_micro, then backward (gradients add up in w.grad); return w.grad.",
))

register(Exercise("6.5", "Bits per byte", "bits_per_byte", points=1,
    reference=bits_per_byte, compare=close_to(rel=1e-9),
    cases=lambda g: [("2 nats per token, 4 bytes per token", (2.0, 4.0)),
                     ("GPT-2-like", (3.3, 4.2)),
                     ("characters as tokens", (1.2, 1.0))],
    hint="nats to bits: divide by ln 2; per token to per byte: divide by the bytes each token "
         "covers.",
))
