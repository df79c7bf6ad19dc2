"""How big a model is, how much memory training it takes, and how much compute: from a ModelConfig
alone.

The model chapter's real nn.Module is tested to have exactly `parameter_count(cfg)` parameters, so
this file and the model cannot drift apart.

>>> from llmcourse.model.config import get_preset
>>> parameter_count(get_preset("gpt2"))
124439808
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmcourse.model.config import ModelConfig

Precision = Literal["fp32", "bf16-mixed"]

# Dense bf16/fp16 tensor-core peaks from the vendors' data sheets, in FLOP/s.
GPU_PEAK_FLOPS: dict[str, float] = {
    "T4 (fp16)": 65e12,
    "A100 (bf16)": 312e12,
    "H100 SXM (bf16)": 989e12,
}


def parameter_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per part of the model. Tied embeddings count once, as in
    `sum(p.numel() for p in model.parameters())`."""
    d, L, hd = cfg.d_model, cfg.n_layer, cfg.head_dim
    q_dim, kv_dim = cfg.n_head * hd, cfg.kv_heads * hd
    b = 1 if cfg.bias else 0
    attention = d * q_dim + 2 * d * kv_dim + q_dim * d + b * (q_dim + 2 * kv_dim + d)
    if cfg.mlp == "gelu":
        mlp = 2 * d * cfg.ffn_dim + b * (cfg.ffn_dim + d)
    else:  # SwiGLU: gate, up and down projections
        mlp = 3 * d * cfg.ffn_dim + b * (2 * cfg.ffn_dim + d)
    norm = 2 * d if cfg.norm == "layernorm" and cfg.bias else d
    return {
        "token embedding": cfg.vocab_size * d,
        "position embedding": cfg.context_length * d if cfg.position == "learned" else 0,
        "attention": L * attention,
        "mlp": L * mlp,
        "norms": (2 * L + 1) * norm,
        "lm head": 0 if cfg.tie_embeddings else cfg.vocab_size * d,
    }


def parameter_count(cfg: ModelConfig) -> int:
    return sum(parameter_breakdown(cfg).values())


def matmul_parameter_count(cfg: ModelConfig) -> int:
    """Weights that take part in a matrix multiply per token: every layer's projections plus the LM
    head (even when tied, the head is a real d x V matmul); embedding lookups, norms and biases are
    cheap."""
    parts = parameter_breakdown(cfg)
    d, hd = cfg.d_model, cfg.head_dim
    biases = 0
    if cfg.bias:
        biases = cfg.n_layer * (cfg.n_head * hd + 2 * cfg.kv_heads * hd + d + cfg.ffn_dim + d
                                + (cfg.ffn_dim if cfg.mlp == "swiglu" else 0))
    return parts["attention"] + parts["mlp"] - biases + cfg.vocab_size * d


def flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward): 6 per matmul weight, plus 12 * L * T * d for
    the attention scores and weighted sum (the PaLM/nanoGPT convention; the causal mask's saving is
    not counted)."""
    T = cfg.context_length if seq_len is None else seq_len
    return 6.0 * matmul_parameter_count(cfg) + 12.0 * cfg.n_layer * T * cfg.d_model


def activation_elements_per_token(cfg: ModelConfig, checkpointing: bool = False) -> int:
    """Tensors one block saves for backward, in elements per token (sdpa/flash attention: no T x T
    matrix kept). Checked against what autograd saves in transformers' GPT-2 and Llama blocks
    (tests/test_sizing.py)."""
    d, kv = cfg.d_model, cfg.kv_heads * cfg.head_dim
    if checkpointing:
        return d  # only the block's input; everything else is recomputed in backward
    # LayerNorm's fused kernel keeps its input; RMSNorm, written out as Llama's is, also the
    # normalised values
    norms = 2 * (d if cfg.norm == "layernorm" else 2 * d)
    # the q/k/v projection's input; q, k and v; the attention output, which the output projection
    # reads as it is
    attention = d + (d + 2 * kv) + d
    # the MLP's input, then GELU: before and after the activation; SwiGLU: the gate before and
    # after SiLU, up, and their product
    mlp = d + (2 if cfg.mlp == "gelu" else 4) * cfg.ffn_dim
    return norms + attention + mlp


@dataclass(frozen=True)
class TrainingMemory:
    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, float]:
        return {"weights": self.weights, "gradients": self.gradients, "optimizer": self.optimizer,
                "activations": self.activations}


def training_memory(cfg: ModelConfig, batch_size: int, seq_len: int | None = None,
                    precision: Precision = "fp32", checkpointing: bool = False) -> TrainingMemory:
    """Bytes needed to train with AdamW, on one device, without sharding.

    fp32: weights, gradients and the two AdamW moments are 4 bytes each (16 bytes per parameter).
    bf16-mixed (autocast): the same fp32 master state, plus a bf16 copy of the weights kept during
    the forward pass; the saving is in the activations, stored in 2 bytes. Logits for the loss are
    kept in fp32 in both. Activation checkpointing keeps only each block's input and recomputes one
    block at a time in backward.
    """
    if precision not in ("fp32", "bf16-mixed"):
        raise ValueError(f"precision must be 'fp32' or 'bf16-mixed', got {precision!r}")
    T = cfg.context_length if seq_len is None else seq_len
    if T > cfg.context_length:
        raise ValueError(f"seq_len={T} is longer than the context length {cfg.context_length}")
    n = parameter_count(cfg)
    act_bytes = 4 if precision == "fp32" else 2
    tokens = batch_size * T
    per_layer = activation_elements_per_token(cfg, checkpointing)
    stored = cfg.n_layer * per_layer
    if checkpointing:  # the one block being recomputed holds its full activations for a moment
        stored += activation_elements_per_token(cfg, checkpointing=False)
    stored += 2 * cfg.d_model  # the final norm's input and output (the LM head's input)
    activations = tokens * (stored * act_bytes + cfg.vocab_size * 4)
    weights = 4 * n + (2 * n if precision == "bf16-mixed" else 0)
    return TrainingMemory(weights=weights, gradients=4 * n, optimizer=8 * n,
                          activations=activations)


@dataclass(frozen=True)
class TrainingCompute:
    flops: float
    gpu_hours: float


def training_compute(cfg: ModelConfig, tokens: float, gpu: str = "H100 SXM (bf16)",
                     mfu: float = 0.4, seq_len: int | None = None) -> TrainingCompute:
    """Total training FLOPs for `tokens`, and GPU-hours at model-FLOPs utilisation `mfu` of the
    GPU's peak."""
    if gpu not in GPU_PEAK_FLOPS:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPU_PEAK_FLOPS)}")
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    flops = flops_per_token(cfg, seq_len) * tokens
    return TrainingCompute(flops=flops, gpu_hours=flops / (GPU_PEAK_FLOPS[gpu] * mfu) / 3600)


Strategy = Literal["ddp", "zero1", "zero2", "fsdp"]
STRATEGIES: tuple[str, ...] = ("ddp", "zero1", "zero2", "fsdp")


def sharded_memory(cfg: ModelConfig, world_size: int, strategy: Strategy, batch_size: int,
                   seq_len: int | None = None, checkpointing: bool = False) -> TrainingMemory:
    """Bytes per device of fp32 AdamW training on `world_size` devices, each with a micro-batch of
    `batch_size`.

    ddp keeps everything on every device; ZeRO-1 splits AdamW's moments over the devices, ZeRO-2 the
    gradients too, and FSDP (ZeRO-3) the weights as well, gathering one block's full weights at a
    time (counted here). Activations are each device's own: sharding the model state does not touch
    them.

    Bytes of model state per parameter for GPT-2 124M on 8 devices (16 on one):

    >>> from llmcourse.model.config import get_preset
    >>> cfg = get_preset("gpt2")
    >>> per_device = [sharded_memory(cfg, 8, strategy, 1) for strategy in STRATEGIES]
    >>> n = parameter_count(cfg)
    >>> [round((m.weights + m.gradients + m.optimizer) / n, 2) for m in per_device]
    [16.0, 9.0, 5.5, 2.23]
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    full = training_memory(cfg, batch_size, seq_len, checkpointing=checkpointing)
    n = world_size
    weights, gradients, optimizer = full.weights, full.gradients, full.optimizer / n
    if strategy in ("zero2", "fsdp"):
        gradients = full.gradients / n
    if strategy == "fsdp":
        parts = parameter_breakdown(cfg)
        # one block's weights, gathered in full
        block = 4 * (parts["attention"] + parts["mlp"]) / cfg.n_layer
        weights = full.weights / n + block
    if strategy == "ddp":
        optimizer = full.optimizer
    return TrainingMemory(weights=weights, gradients=gradients, optimizer=optimizer,
                          activations=full.activations)


def compute_optimal(flops: float, tokens_per_parameter: float = 20.0) -> tuple[float, float]:
    """(parameters N, tokens D) that spend `flops` of training compute the Chinchilla way: C = 6 N D
    with D = tokens_per_parameter * N (Hoffmann et al. 2022 found about 20).

    >>> n, d = compute_optimal(6 * 1e9 * 20e9)
    >>> round(n / 1e9, 3), round(d / 1e9, 3)
    (1.0, 20.0)
    """
    if flops <= 0 or tokens_per_parameter <= 0:
        raise ValueError(f"need flops > 0 and tokens_per_parameter > 0, "
                         f"got {flops} and {tokens_per_parameter}")
    n = (flops / (6 * tokens_per_parameter)) ** 0.5
    return n, tokens_per_parameter * n
