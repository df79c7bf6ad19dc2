"""Load and save Hugging Face-format checkpoints (config.json + safetensors) of GPT-2 and
Llama-family models.

The work is in the names and layouts. GPT-2 stores its projections as Conv1D, (in, out), so they are
transposed, and packs q, k and v into one c_attn matrix, as we do. Llama stores q_proj, k_proj and
v_proj apart; they are stacked into our one qkv projection and split again on saving. Llama's q/k
weights are already in the rotate-half RoPE layout our attention uses. A tied LM head is not stored
at all. Only safetensors are read: no pickle, no code execution.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from llmcourse.model.attention import rope_tables
from llmcourse.model.config import ModelConfig, RopeScaling
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import END_OF_TEXT

# buffers some old files carry
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded as asked; the message lists every problem found."""


def config_from_hf(hf: dict) -> ModelConfig:
    kind = hf.get("model_type")
    if kind == "gpt2":
        if hf.get("activation_function", "gelu_new") not in ("gelu_new", "gelu_pytorch_tanh"):
            raise CheckpointError(f"unsupported GPT-2 activation {hf['activation_function']!r}")
        return ModelConfig(vocab_size=hf["vocab_size"], context_length=hf["n_positions"],
                           n_layer=hf["n_layer"], n_head=hf["n_head"], d_model=hf["n_embd"],
                           d_ff=hf.get("n_inner"),
                           norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                           tie_embeddings=hf.get("tie_word_embeddings", True))
    if kind == "llama":
        rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
        rope_type = rope.get("rope_type", rope.get("type", "default"))
        if rope_type not in ("default", "llama3"):
            raise CheckpointError(f"unsupported RoPE scaling {rope_type!r}; "
                                  f"plain RoPE and Llama 3's ('llama3') are built here")
        scaling = None
        if rope_type == "llama3":
            scaling = RopeScaling(factor=float(rope["factor"]),
                                  low_freq_factor=float(rope["low_freq_factor"]),
                                  high_freq_factor=float(rope["high_freq_factor"]),
                                  original_context=int(rope["original_max_position_embeddings"]))
        if hf.get("attention_bias") or hf.get("mlp_bias"):
            raise CheckpointError("Llama checkpoints with biases are not supported")
        heads = hf["num_attention_heads"]
        if hf.get("head_dim", hf["hidden_size"] // heads) != hf["hidden_size"] // heads:
            raise CheckpointError(
                "head_dim other than hidden_size / num_attention_heads is not supported")
        return ModelConfig(vocab_size=hf["vocab_size"],
                           context_length=hf["max_position_embeddings"],
                           n_layer=hf["num_hidden_layers"], n_head=heads,
                           n_kv_head=hf.get("num_key_value_heads", heads),
                           d_model=hf["hidden_size"], d_ff=hf["intermediate_size"],
                           norm="rmsnorm", mlp="swiglu", position="rope",
                           rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
                           rope_scaling=scaling, bias=False,
                           norm_eps=hf.get("rms_norm_eps", 1e-6),
                           tie_embeddings=hf.get("tie_word_embeddings", False))
    raise CheckpointError(f"unsupported model_type {kind!r}; supported: gpt2, llama")


def config_to_hf(cfg: ModelConfig) -> dict:
    gpt2_shaped = (cfg.position == "learned" and cfg.norm == "layernorm" and cfg.mlp == "gelu"
                   and cfg.bias and cfg.kv_heads == cfg.n_head)
    if gpt2_shaped:
        return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
                "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length,
                "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.d_model,
                "n_inner": cfg.d_ff, "layer_norm_epsilon": cfg.norm_eps,
                "activation_function": "gelu_new", "tie_word_embeddings": cfg.tie_embeddings}
    if cfg.position == "rope" and cfg.norm == "rmsnorm" and cfg.mlp == "swiglu" and not cfg.bias:
        scaling = cfg.rope_scaling
        rope = {} if scaling is None else {"rope_scaling": {
            "rope_type": "llama3", "factor": scaling.factor,
            "low_freq_factor": scaling.low_freq_factor,
            "high_freq_factor": scaling.high_freq_factor,
            "original_max_position_embeddings": scaling.original_context}}
        return {"model_type": "llama", "architectures": ["LlamaForCausalLM"],
                "vocab_size": cfg.vocab_size, "max_position_embeddings": cfg.context_length,
                "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
                "num_key_value_heads": cfg.kv_heads, "hidden_size": cfg.d_model,
                "intermediate_size": cfg.ffn_dim, "rms_norm_eps": cfg.norm_eps,
                "rope_theta": cfg.rope_theta, "tie_word_embeddings": cfg.tie_embeddings,
                "hidden_act": "silu", **rope}
    raise CheckpointError(
        "this config is neither GPT-2-shaped nor Llama-shaped, so no HF format fits it")


# HF's names -> ours, both ways. Inside a block the keys are module names; the weight/bias suffix is
# kept.
_GPT2_BLOCK = {"attn.c_attn": "attn.qkv", "attn.c_proj": "attn.o",
               "mlp.c_fc": "mlp.up", "mlp.c_proj": "mlp.down",
               "ln_1": "norm1", "ln_2": "norm2"}
# (in, out) weights: transposed both ways
_GPT2_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
# under "transformer." (some old files leave the prefix out)
_GPT2_TOP = {"wte.weight": "tok_emb.weight", "wpe.weight": "pos_emb.weight",
             "ln_f.weight": "norm.weight", "ln_f.bias": "norm.bias"}
# stacked, in this order, into attn.qkv
_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
_LLAMA_BLOCK = {"self_attn.o_proj": "attn.o", "mlp.gate_proj": "mlp.gate",
                "mlp.up_proj": "mlp.up", "mlp.down_proj": "mlp.down",
                "input_layernorm": "norm1", "post_attention_layernorm": "norm2"}
_LLAMA_TOP = {"model.embed_tokens.weight": "tok_emb.weight", "model.norm.weight": "norm.weight"}


def _gpt2_to_ours(tensors: Iterable[tuple[str, torch.Tensor]],
                  cfg: ModelConfig) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in tensors:
        key = key.removeprefix("transformer.")
        if key.endswith(IGNORED_SUFFIXES) or (key == "lm_head.weight" and cfg.tie_embeddings):
            continue
        if key.startswith("h."):
            _, i, *rest = key.split(".")
            module, kind = ".".join(rest[:-1]), rest[-1]
            if module in _GPT2_CONV1D and kind == "weight":
                t = t.t().contiguous()
            out[f"blocks.{i}.{_GPT2_BLOCK.get(module, module)}.{kind}"] = t
        else:
            out[_GPT2_TOP.get(key, key)] = t
    return out


def _llama_to_ours(tensors: Iterable[tuple[str, torch.Tensor]],
                   cfg: ModelConfig) -> dict[str, torch.Tensor]:
    out, qkv = {}, {}
    for key, t in tensors:
        if key.endswith(IGNORED_SUFFIXES) or (key == "lm_head.weight" and cfg.tie_embeddings):
            continue
        if key.startswith("model.layers."):
            _, _, i, *rest = key.split(".")
            module, kind = ".".join(rest[:-1]), rest[-1]
            if module in _QKV and kind == "weight":
                parts = qkv.setdefault(i, {})
                parts[module] = t
                # stack as soon as all three arrived, so the parts can be freed
                if len(parts) == len(_QKV):
                    stacked = torch.cat([parts.pop(name) for name in _QKV])
                    out[f"blocks.{i}.attn.qkv.weight"] = stacked
            else:
                out[f"blocks.{i}.{_LLAMA_BLOCK.get(module, module)}.{kind}"] = t
        else:
            out[_LLAMA_TOP.get(key, key)] = t
    # incomplete: left under their own names, so the strict load lists them (and the missing qkv) as
    # problems
    for i, parts in qkv.items():
        out.update({f"model.layers.{i}.{name}.weight": t for name, t in parts.items()})
    return out


def _ours_to_hf(model: GPT) -> dict[str, torch.Tensor]:
    cfg, llama = model.cfg, config_to_hf(model.cfg)["model_type"] == "llama"
    state = {k: v for k, v in model.state_dict().items()
             if not (cfg.tie_embeddings and k == "lm_head.weight")}
    block = {v: k for k, v in (_LLAMA_BLOCK if llama else _GPT2_BLOCK).items()}
    top_names = _LLAMA_TOP if llama else _GPT2_TOP
    top = {v: k if llama else f"transformer.{k}" for k, v in top_names.items()}
    layer = "model.layers" if llama else "transformer.h"
    out = {}
    for key, t in state.items():
        if not key.startswith("blocks."):
            out[top.get(key, key)] = t
            continue
        _, i, *rest = key.split(".")
        module, kind = ".".join(rest[:-1]), rest[-1]
        if llama and module == "attn.qkv":
            pieces = t.split(model.blocks[int(i)].attn.qkv_sizes)
            out.update({f"{layer}.{i}.{name}.weight": w
                        for name, w in zip(_QKV, pieces, strict=True)})
            continue
        theirs = block[module]
        if theirs in _GPT2_CONV1D and kind == "weight":
            t = t.t().contiguous()
        out[f"{layer}.{i}.{theirs}.{kind}"] = t
    return out


def _read_tensors(folder: Path, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Each tensor of the checkpoint, one at a time and already in `dtype`, so that loading never
    holds more than the model plus one tensor."""
    index = folder / "model.safetensors.index.json"
    try:
        if index.exists():  # a sharded checkpoint
            files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        for name in files:
            with safe_open(folder / name, framework="pt") as f:
                for key in f.keys():
                    yield key, f.get_tensor(key).to(dtype)
    except FileNotFoundError as err:
        raise CheckpointError(f"{folder}: no model.safetensors (or index) found: {err}") from None
    # safetensors raises error types of its own for damaged files: any of them means unreadable
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{folder}: cannot read the safetensors file "
                              f"({type(err).__name__}: {err})") from None


def load_state_strict(model: GPT, state: dict[str, torch.Tensor], assign: bool = False) -> None:
    """Load `state` into `model`, or raise one error that lists every missing key, unexpected key
    and bad shape. assign=True takes the tensors themselves as the parameters (no copy): for a model
    built on the meta device."""
    expected = {k: v.shape for k, v in model.state_dict().items()
                if not (model.cfg.tie_embeddings and k == "lm_head.weight")}
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k])}"
              for k in sorted(expected.keys() & state.keys()) if state[k].shape != expected[k]]
    if missing or unexpected or shapes:
        lines = []
        if missing:
            lines.append(f"missing: {', '.join(missing)}")
        if unexpected:
            lines.append(f"unexpected: {', '.join(unexpected)}")
        lines += [f"wrong shape: {s}" for s in shapes]
        raise CheckpointError("the checkpoint does not fit the model:\n  " + "\n  ".join(lines))
    # strict=False only for the tied head, checked above
    model.load_state_dict(state, strict=False, assign=assign)
    # assigning replaced the embedding's Parameter: point the head at the new one
    if model.cfg.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight


def load_hf_checkpoint(path: str | Path, dtype: torch.dtype = torch.float32) -> GPT:
    """Our GPT with the weights of an HF-format checkpoint folder (GPT-2 or Llama family).

    The model is built on the meta device (shapes, no memory, no random initialisation) and the
    checkpoint's tensors become its parameters: peak memory is one copy of the weights, not a random
    model plus the loaded ones."""
    folder = Path(path)
    try:
        hf = json.loads((folder / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{folder}: no readable config.json ({err})") from None
    cfg = config_from_hf(hf)
    convert = _gpt2_to_ours if hf["model_type"] == "gpt2" else _llama_to_ours
    state = convert(_read_tensors(folder, dtype), cfg)
    with torch.device("meta"):
        model = GPT(cfg)
    load_state_strict(model, state, assign=True)
    if cfg.position == "rope":
        # non-persistent buffers are not in the checkpoint: compute them for real
        model.rope_cos, model.rope_sin = rope_tables(cfg.head_dim, cfg.context_length,
                                                     cfg.rope_theta, scaling=cfg.rope_scaling)
    return model.eval()


def save_hf_tokenizer(tokenizer, folder: str | Path, eos: str = END_OF_TEXT) -> None:
    """Write `tokenizer` (llmcourse's byte-level BPE) as a Hugging Face fast tokenizer: its ranks in
    tiktoken's file format, converted by transformers' own converter (transformers must be
    installed). The same text gets the same ids, so lm-eval's HF backend or any transformers
    pipeline can read a saved course model."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ranks = Path(tmp) / "ranks.tiktoken"
        by_rank = sorted(tokenizer.ranks.items(), key=lambda kv: kv[1])
        ranks.write_text("".join(f"{base64.b64encode(token).decode()} {rank}\n"
                                 for token, rank in by_rank))
        converter = TikTokenConverter(vocab_file=str(ranks), pattern=tokenizer.pattern,
                                      extra_special_tokens=list(tokenizer.special_tokens))
        converted = converter.converted()
    fast = PreTrainedTokenizerFast(tokenizer_object=converted, eos_token=eos, bos_token=eos)
    fast.save_pretrained(folder)


def save_hf_checkpoint(model: GPT, path: str | Path, tokenizer=None) -> None:
    """Write config.json and model.safetensors that transformers (and load_hf_checkpoint) can read,
    and with a `tokenizer` its Hugging Face files too (`save_hf_tokenizer`; the config then names
    its end-of-text id). The folder is written next to its final place and renamed into it, so an
    interrupted save leaves no half checkpoint."""
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        config = config_to_hf(model.cfg)
        if tokenizer is not None:
            eot = tokenizer.special_tokens[END_OF_TEXT]
            config |= {"bos_token_id": eot, "eos_token_id": eot}
            save_hf_tokenizer(tokenizer, tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        tensors = {k: v.contiguous() for k, v in _ours_to_hf(model).items()}
        save_file(tensors, tmp / "model.safetensors", metadata={"format": "pt"})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
