"""The GPT model: embeddings, a stack of pre-norm transformer blocks, a final norm and the LM head.

One ModelConfig drives every variant: GPT-2 (LayerNorm, GELU MLP, learned positions, biases) and
Llama (RMSNorm, SwiGLU, RoPE, grouped-query attention, no biases). Its parameter count is exactly
`llmcourse.model.sizing.parameter_count(cfg)` (tested), so the calculator of chapter 1 and this
module cannot drift apart.

>>> from llmcourse.model.config import get_preset
>>> model = GPT(get_preset("tiny", n_layer=1))
>>> model(torch.zeros(2, 5, dtype=torch.long)).shape
torch.Size([2, 5, 4096])
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from llmcourse.model.attention import KVCache, MultiHeadAttention, rope_tables
from llmcourse.model.config import ModelConfig
from llmcourse.model.embeddings import check_token_ids

IGNORE = -100  # a target that counts for nothing: the prompt and padding of fine-tuning rows


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without centring or bias, computed in
    float32."""

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model, cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


class MLP(nn.Module):
    """GELU: down(gelu(up(x))). SwiGLU: down(silu(gate(x)) * up(x)), a gated unit that trains better
    per FLOP."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.mlp == "swiglu"
        self.up = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=cfg.bias)
        self.gate = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=cfg.bias) if self.swiglu else None
        self.down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.swiglu:
            return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))
        # GPT-2's tanh-approximated GELU
        return self.dropout(self.down(F.gelu(self.up(x), approximate="tanh")))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): pre-norm residuals keep a clean path for the
    gradient."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), MultiHeadAttention(cfg, layer)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, rope=None, cache: KVCache | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), rope, cache, mask))
        return x + self.mlp(self.norm2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        learned = cfg.position == "learned"
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.d_model) if learned else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        # activation checkpointing, a training-time switch (the trainer sets it): keep only each
        # block's input for the backward pass and run the block's forward again there
        self.checkpoint_blocks = False
        if cfg.tie_embeddings:
            # one (V, d) matrix reads tokens in and writes logits out
            self.lm_head.weight = self.tok_emb.weight
        if cfg.position == "rope":
            cos, sin = rope_tables(cfg.head_dim, cfg.context_length, cfg.rope_theta,
                                   scaling=cfg.rope_scaling)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream
        for name, p in self.named_parameters():
            if name.endswith(("attn.o.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None, mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, last_only: bool = False):
        """Logits (B, T, V); with targets, also the mean cross-entropy loss. With a cache, ids
        continue it.

        mask: bool, True where a query may attend ((T, S), (B, 1, T, S) or (B, 1, 1, S), e.g.
        `padding_mask`), joined with the causal mask in every layer. positions: (T,) or (B, T)
        position of each token (default: counted on from the cache), e.g. `padded_positions` for
        left padding. last_only: logits of the last position alone, (B, 1, V), all that generation
        needs (the LM head is the largest matrix multiply)."""
        start = cache.length if cache is not None else 0
        check_token_ids(ids, self.cfg.vocab_size, self.cfg.context_length, start)
        B, T = ids.shape
        if positions is None:
            positions = torch.arange(start, start + T, device=ids.device)  # (T,)
        elif positions.shape not in ((T,), (B, T)):
            raise ValueError(f"positions must have shape ({T},) or ({B}, {T}), "
                             f"got {tuple(positions.shape)}")
        x = self.tok_emb(ids)  # (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(positions)  # (T, d) or (B, T, d)
        x = self.drop(x)
        rope = None
        # this chunk's angles: (T, D), or (B, 1, T, D) for per-sequence positions
        if self.cfg.position == "rope":
            rope = (self.rope_cos[positions], self.rope_sin[positions])
            if positions.dim() == 2:
                rope = (rope[0][:, None], rope[1][:, None])
        for block in self.blocks:
            if self.checkpoint_blocks and torch.is_grad_enabled() and cache is None:
                x = torch.utils.checkpoint.checkpoint(block, x, rope, None, mask,
                                                      use_reentrant=False)
            else:
                x = block(x, rope, cache, mask)
        if cache is not None:
            cache.length += T
        if last_only:
            x = x[:, -1:]
        logits = self.lm_head(self.norm(x))  # (B, T, V)
        if targets is None:
            return logits
        # the mean over the targets that count; a batch with none (a fine-tuning answer cut
        # away) has loss 0 and no gradient, not 0 / 0
        flat = targets.flatten()
        summed = F.cross_entropy(logits.flatten(0, 1).float(), flat, ignore_index=IGNORE,
                                 reduction="sum")
        loss = summed / (flat != IGNORE).sum().clamp(min=1)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(layers, heads, T, T) attention weights of the first sequence in `ids`: causal, and-ed
        with `mask`."""
        for block in self.blocks:
            block.attn.record = True
        try:
            self(ids, mask=mask)
            return torch.stack([block.attn.weights[0] for block in self.blocks])
        finally:
            for block in self.blocks:
                block.attn.record, block.attn.weights = False, None

    def set_fused_attention(self, fused: bool) -> None:
        """Switch every layer between F.scaled_dot_product_attention and the naive path."""
        for block in self.blocks:
            block.attn.fused = fused
