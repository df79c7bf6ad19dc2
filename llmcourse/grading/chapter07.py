"""Chapter 7's exercises: the bytes of training state, an all-reduce by hand, the activations of one
block, a compute-optimal model, and memory per device under sharding. The references are the
package's sizing functions."""
from __future__ import annotations

from typing import Any

import torch

from llmcourse.grading.exercise import (
    Exercise,
    close_number,
    close_to,
    numbered_tensors_close,
    register,
)
from llmcourse.model.config import get_preset
from llmcourse.model.sizing import (
    activation_elements_per_token,
    compute_optimal,
    sharded_memory,
    training_memory,
)

# the cases name presets: the grader sends plain values to the learner's kernel, never config
# objects
PRESETS = ("gpt2", "llama-1.2b", "llama-7b", "tiny", "course")


def _state_bytes(preset: str, precision: str) -> float:
    memory = training_memory(get_preset(preset), 1, precision=precision)
    return memory.weights + memory.gradients + memory.optimizer


def _all_reduce_mean(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    mean = torch.stack(grads).mean(dim=0)
    return [mean.clone() for _ in grads]


def _block_elements(preset: str) -> int:
    return activation_elements_per_token(get_preset(preset))


def _per_device(preset: str, world_size: int, strategy: str) -> float:
    memory = sharded_memory(get_preset(preset), world_size, strategy, 1)
    return memory.weights + memory.gradients + memory.optimizer


register(Exercise("7.1", "The bytes of training state", "state_bytes", points=2,
    reference=_state_bytes, compare=close_to(rel=1e-9),
    cases=lambda g: [(f"{name}, {p}", (name, p))
                     for name in PRESETS for p in ("fp32", "bf16-mixed")],
    hint="fp32 AdamW keeps 4 bytes of weight, 4 of gradient and 8 of moments per parameter; "
         "bf16 mixed precision adds a 2-byte bf16 copy of each weight. Count parameters with "
         "llmcourse.model.sizing.parameter_count.",
))

register(Exercise("7.2", "An all-reduce by hand", "all_reduce_mean", points=2,
    reference=_all_reduce_mean, compare=numbered_tensors_close("rank", atol=1e-12),
    cases=lambda g: [(f"{n} processes",
                      ([torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(n)],))
                     for n in (2, 4, 1)],
    hint="sum the gradients of every process, divide by their number, and give every process its "
         "own copy of the result (a list as long as the input).",
))

register(Exercise("7.3", "The activations of one block", "block_activation_elements", points=3,
    reference=_block_elements, compare=close_to(rel=1e-12),
    cases=lambda g: [(name, (name,)) for name in PRESETS],
    hint="per token: each norm's input (d; an RMSNorm also keeps the normalised values, d more); "
         "attention: the q/k/v projection's input (d), q, k and v (d + 2 * kv_heads * head_dim) "
         "and the attention output (d); the MLP: its input (d) and ffn_dim per tensor it keeps "
         "(2 for GELU, 4 for SwiGLU).",
))


def _optimal_pair(expected: tuple[float, float], got: Any) -> str | None:
    if isinstance(got, tuple) and len(got) == 2 and all(
            close_number(e, x, rel=1e-9) is None for e, x in zip(expected, got, strict=True)):
        return None
    return f"expected (parameters, tokens) = ({expected[0]:.4g}, {expected[1]:.4g}), got {got!r}"


register(Exercise("7.4", "A compute-optimal model", "chinchilla", points=2,
    reference=compute_optimal, compare=_optimal_pair,
    cases=lambda g: [("GPT-3's budget, 3.14e23 FLOPs", (3.14e23,)), ("1e21 FLOPs", (1e21,)),
                     ("a CPU afternoon, 1e15 FLOPs", (1e15,))],
    hint="C = 6 N D and D = 20 N give C = 120 N^2: N = sqrt(C / 120), then D = 20 N. "
         "Return (N, D).",
))

register(Exercise("7.5", "Memory per device under sharding", "per_device_bytes", points=3,
    reference=_per_device, compare=close_to(rel=1e-9),
    cases=lambda g: [(f"{name}, {n} devices, {s}", (name, n, s)) for name in PRESETS[:3]
                     for n, s in ((8, "ddp"), (8, "zero1"), (4, "zero2"), (16, "fsdp"))],
    hint="fp32 AdamW, per device: ddp keeps 16 bytes per parameter; zero1 splits the 8 bytes of "
         "moments over the devices; zero2 also the 4 of gradients; fsdp also the 4 of weights, "
         "plus one block's full weights (4 bytes x its attention and MLP parameters, from "
         "llmcourse.model.sizing.parameter_breakdown / n_layer).",
))
