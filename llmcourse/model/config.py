"""Model configuration: one small dataclass and the named presets every chapter, test and
benchmark builds from.

>>> cfg = get_preset("gpt2")
>>> cfg.n_layer, cfg.d_model, cfg.head_dim
(12, 768, 64)
>>> get_preset("gpt2", n_layer=2).n_layer
2
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3's RoPE scaling ("rope_type": "llama3" in HF configs): stretch the slow rotations of a
    model trained on `original_context` positions so that it reads longer texts. Rotations faster
    than `original_context / high_freq_factor` positions per turn are kept; those slower than
    `original_context / low_freq_factor` are divided by `factor`; the ones in between are blended
    smoothly."""
    factor: float = 32.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_context: int = 8192

    def __post_init__(self) -> None:
        if self.factor < 1 or self.original_context <= 0:
            raise ValueError(
                f"RoPE scaling needs factor >= 1 and a positive original_context, got {self}"
            )
        if not 0 < self.low_freq_factor < self.high_freq_factor:
            raise ValueError(
                f"RoPE scaling needs 0 < low_freq_factor < high_freq_factor, got {self}"
            )


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 50257
    context_length: int = 1024
    n_layer: int = 12
    n_head: int = 12
    # None: one K/V head per query head (MHA); 1 is MQA; in between is GQA
    n_kv_head: int | None = None
    d_model: int = 768
    # None: 4 * d_model for GELU (GPT-2); about 8/3 * d_model for SwiGLU (Llama)
    d_ff: int | None = None
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu"] = "gelu"
    position: Literal["learned", "rope"] = "learned"
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None  # None: plain RoPE
    tie_embeddings: bool = True
    bias: bool = True
    dropout: float = 0.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}: "
                f"each head needs an equal slice of width d_model / n_head"
            )
        if self.n_kv_head is not None and (self.n_kv_head <= 0 or self.n_head % self.n_kv_head):
            raise ValueError(
                f"n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}: "
                f"grouped-query attention shares each K/V head among an equal group of query heads"
            )
        if self.d_ff is not None and self.d_ff <= 0:
            raise ValueError(f"d_ff must be positive, got {self.d_ff}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (("norm", ("layernorm", "rmsnorm")), ("mlp", ("gelu", "swiglu")),
                              ("position", ("learned", "rope"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def ffn_dim(self) -> int:
        """The MLP's hidden width. SwiGLU has three matrices instead of two, so Llama shrinks the
        width to 2/3 of 4d, which keeps the parameters (and FLOPs) of GPT-2's 4d GELU MLP; rounded
        up to a multiple of 64 for fast matrix multiplies (Llama rounds to 256; its presets give
        their real widths explicitly).

        >>> ModelConfig(d_model=768).ffn_dim, ModelConfig(d_model=768, mlp="swiglu").ffn_dim
        (3072, 2048)
        """
        if self.d_ff is not None:
            return self.d_ff
        if self.mlp == "gelu":
            return 4 * self.d_model
        return -(-(8 * self.d_model) // (3 * 64)) * 64

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> ModelConfig:
        """The inverse of `dataclasses.asdict` (how checkpoints store a config).

        >>> cfg = get_preset("llama-1.2b")
        >>> ModelConfig.from_dict(dataclasses.asdict(cfg)) == cfg
        True
        """
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(sorted(unknown))}")
        scaling = fields.get("rope_scaling")
        if isinstance(scaling, dict):
            scaling = RopeScaling(**scaling)
        return cls(**{**fields, "rope_scaling": scaling})


_LLAMA = dict(norm="rmsnorm", mlp="swiglu", position="rope", bias=False)

PRESETS: dict[str, ModelConfig] = {
    # OpenAI GPT-2 small and medium (HF openai-community/gpt2, gpt2-medium)
    "gpt2": ModelConfig(),
    "gpt2-medium": ModelConfig(n_layer=24, n_head=16, d_model=1024),
    # The "entry-level" 1.2B model with a 4096-token context; the shape of Llama 3.2 1B (tied
    # embeddings, GQA 32:8, Llama 3's RoPE scaling), whose HF checkpoint loads into it
    "llama-1.2b": ModelConfig(vocab_size=128256, context_length=4096,
                              n_layer=16, n_head=32, n_kv_head=8, d_model=2048, d_ff=8192,
                              rope_theta=500000.0, rope_scaling=RopeScaling(), **_LLAMA),
    # Llama 2 7B: untied head, full multi-head attention
    "llama-7b": ModelConfig(vocab_size=32000, context_length=4096,
                            n_layer=32, n_head=32, d_model=4096, d_ff=11008,
                            tie_embeddings=False, **_LLAMA),
    # What the chapters train on a 2-core CPU in minutes
    "tiny": ModelConfig(vocab_size=4096, context_length=256, n_layer=4, n_head=4, d_model=128),
    # The course model (llmcourse.training.course_model) and `llmcourse train`'s default: tiny,
    # with a 2,048-token vocabulary and a 64-token context, so that a minute of CPU sees each
    # token often
    "course": ModelConfig(vocab_size=2048, context_length=64, n_layer=4, n_head=4, d_model=128),
}


def pick_preset(presets: dict[str, Any], name: str, overrides: dict[str, Any],
                kind: str = "preset") -> Any:
    """presets[name] with `overrides` replaced, or a ValueError that lists the known names."""
    try:
        base = presets[name]
    except KeyError:
        known = ", ".join(presets)
        raise ValueError(f"unknown {kind} {name!r}; the presets are: {known}") from None
    return base.replace(**overrides) if overrides else base


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset called `name`, with any fields replaced by `overrides`."""
    return pick_preset(PRESETS, name, overrides)
