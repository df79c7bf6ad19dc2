"""LoRA (Hu et al., 2021): freeze a linear layer's weight W and learn a low-rank change to it.

    y = x W^T + b + dropout(x) A^T B^T * (alpha / r)     # A: (r, in), B: (out, r)

B starts at zero, so a freshly wrapped model computes exactly what the base model did, and
training moves only A and B: r * (in + out) numbers per layer instead of in * out. A starts
random (Kaiming-uniform, as PEFT and the paper's code do): were both zero, no gradient would
reach either. alpha / r scales the update so that changing the rank does not change how far a
step moves the output. Merging adds (alpha / r) B A into W, so inference costs nothing extra;
unmerging takes it out again.

>>> from torch import nn
>>> layer = LoRALinear(nn.Linear(8, 4), rank=2, alpha=4)
>>> [name for name, p in layer.named_parameters() if p.requires_grad]
['lora_A', 'lora_B']
>>> x = torch.randn(3, 8)
>>> torch.equal(layer(x), layer.base(x))  # B = 0: the base layer's output, exactly
True

**New tokens need trainable rows.** Tokens added for fine-tuning (the chat template's) start as
copies of one mean row (`grow_vocabulary`); were the embedding frozen, <|user|>, <|assistant|> and
<|end|> would stay one vector, and a tied head could never prefer <|end|> to stop. So
`apply_lora(..., train_rows=ids)` also trains those rows and only those (`TrainableRows`, as
PEFT's `trainable_token_indices`): a few hundred numbers more, the rest of the table frozen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# every matrix of a block of llmcourse's GPT (gate only in Llama's SwiGLU); not the LM head, which
# is tied to the embedding
DEFAULT_TARGETS = ("qkv", "o", "up", "gate", "down")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA wraps an nn.Linear, got {type(base).__name__}")
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be a positive int, got {rank!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.base = base.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, alpha, alpha / rank
        weight = base.weight
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, dtype=weight.dtype,
                                               device=weight.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=weight.dtype,
                                               device=weight.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.merged:  # W already holds the update
            return y
        # (..., in) @ (in, r) @ (r, out): the update goes through rank r
        return y + self.dropout(x) @ self.lora_A.T @ self.lora_B.T * self.scaling

    def delta_weight(self) -> torch.Tensor:
        """(alpha / r) B A: what merging adds to W, shape (out, in)."""
        return self.lora_B @ self.lora_A * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged")
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if not self.merged:
            raise RuntimeError("this LoRA layer is not merged")
        self.base.weight -= self.delta_weight()
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha}, merged={self.merged}"


class TrainableRows(nn.Module):
    """A frozen embedding whose rows for `ids` are trainable: the rows are a parameter of their
    own, written over the frozen table (index_copy) at every use."""

    def __init__(self, embedding: nn.Embedding, ids: Sequence[int]) -> None:
        super().__init__()
        ids = sorted(set(ids))
        V = embedding.num_embeddings
        if not ids or not all(0 <= i < V for i in ids):
            raise ValueError(f"rows to train must be token ids in [0, {V}), got {ids}")
        self.base = embedding.requires_grad_(False)
        self.register_buffer("ids", torch.tensor(ids, device=embedding.weight.device))
        self.rows = nn.Parameter(embedding.weight[self.ids].detach().clone())  # (n, d)

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight.index_copy(0, self.ids, self.rows)  # (V, d)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight)


class TiedHead(nn.Module):
    """The LM head of a tied model whose embedding is a TrainableRows: it reads the same rows."""

    def __init__(self, rows: TrainableRows) -> None:
        super().__init__()
        self.rows = rows

    @property
    def weight(self) -> torch.Tensor:
        return self.rows.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.rows.weight)  # (..., V)


def _train_rows(model: nn.Module, ids: Sequence[int]) -> None:
    tied = model.lm_head.weight is model.tok_emb.weight
    if not tied:
        raise ValueError("train_rows needs a tied LM head (cfg.tie_embeddings): an untied head "
                         "would need rows of its own")
    model.tok_emb = TrainableRows(model.tok_emb, ids)
    model.lm_head = TiedHead(model.tok_emb)


def apply_lora(model: nn.Module, rank: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets: Iterable[str] = DEFAULT_TARGETS,
               train_rows: Sequence[int] = ()) -> list[str]:
    """Wrap every nn.Linear whose own name is in `targets` (e.g. 'qkv' matches 'blocks.0.attn.qkv')
    in a LoRALinear, in place, and freeze every other parameter of the model, except the embedding
    rows `train_rows` (new tokens' ids; see TrainableRows). Returns the wrapped layers' names."""
    if lora_layers(model):
        raise ValueError("the model already has LoRA layers: apply_lora once per base model")
    targets = set(targets)
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets]
    if not found:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                         if isinstance(m, nn.Linear)})
        raise ValueError(f"no linear layer of the model is named one of {sorted(targets)}; its "
                         f"linear layers are named {linear}")
    model.requires_grad_(False)
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
    if train_rows:
        _train_rows(model, train_rows)
    return [name for name, _ in found]


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA update into its base weight (for inference at the base model's speed)."""
    for layer in lora_layers(model).values():
        layer.merge()


@torch.no_grad()
def plain_model(model: nn.Module) -> nn.Module:
    """The model as the base architecture again, in place: LoRA merged into the weights and
    trained rows written into the embedding (tied to the head). What to save for chatting."""
    for name, layer in lora_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base)
    if isinstance(model.tok_emb, TrainableRows):
        embedding = model.tok_emb.base
        embedding.weight.copy_(model.tok_emb.weight)
        model.tok_emb = embedding
        head = nn.Linear(embedding.embedding_dim, embedding.num_embeddings, bias=False)
        head.weight = embedding.weight
        model.lm_head = head
    return model.requires_grad_(True)


def unmerge_lora(model: nn.Module) -> None:
    for layer in lora_layers(model).values():
        layer.unmerge()


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA matrices (and any trained rows): the adapter, a small part of the model."""
    state = {f"{name}.{part}": getattr(layer, part).detach().cpu().contiguous()
             for name, layer in lora_layers(model).items() for part in ("lora_A", "lora_B")}
    if isinstance(model.tok_emb, TrainableRows):
        state["tok_emb.rows"] = model.tok_emb.rows.detach().cpu().contiguous()
        state["tok_emb.ids"] = model.tok_emb.ids.cpu()
    return state


def save_adapter(model: nn.Module, path: str | Path) -> Path:
    """The adapter alone, as safetensors, with its rank and alpha in the file's metadata."""
    from safetensors.torch import save_file

    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers: call apply_lora first")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("unmerge the LoRA layers before saving the adapter (unmerge_lora)")
    first = next(iter(layers.values()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(adapter_state_dict(model), str(tmp),
              metadata={"rank": str(first.rank), "alpha": str(first.alpha)})
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def load_adapter(model: nn.Module, path: str | Path) -> list[str]:
    """Wrap the base `model` with the LoRA layers that the adapter file names and load them."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "rank" not in meta or "alpha" not in meta:
        raise ValueError(f"{path} is not a LoRA adapter written by save_adapter (no rank/alpha)")
    tensors = load_file(str(path))
    rows, ids = tensors.pop("tok_emb.rows", None), tensors.pop("tok_emb.ids", None)
    names = sorted({key.rsplit(".", 1)[0] for key in tensors})
    wrapped = apply_lora(model, int(meta["rank"]), float(meta["alpha"]),
                         targets={name.rsplit(".", 1)[-1] for name in names},
                         train_rows=() if ids is None else ids.tolist())
    if rows is not None:
        tensors["tok_emb.rows"] = rows
    if sorted(wrapped) != names:
        raise ValueError(f"{path} holds LoRA weights for {names}, but the model's matching layers "
                         f"are {sorted(wrapped)}")
    layers = lora_layers(model) | {"tok_emb": model.tok_emb}
    for key, value in tensors.items():
        name, part = key.rsplit(".", 1)
        target = getattr(layers[name], part)
        if target.shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the model's "
                             f"{tuple(target.shape)}")
        with torch.no_grad():
            target.copy_(value)
    return wrapped
