"""The course model: a small GPT and its tokenizer, trained once on the course corpus and cached.

Chapters that look inside a trained model or generate from one share this model. The first call
trains it (one to three minutes on a 2-core CPU) and writes it to the cache directory
(`llmcourse.download.cache_dir()`, or $LLMCOURSE_CACHE); later calls load it in about a second. The
cache entry is named by a hash of the configuration and of the code of every module that shapes
the result (tokenizer, model, training loop, corpus, split), so a changed recipe or a changed model
trains anew instead of loading stale weights; edited comments and docstrings do not. Weights are
stored with safetensors, which holds tensors only: loading runs no code. A cache entry that fails
its checks is trained again.

Its validation loss is measured on the held-out documents of chapter 2's split, next to chapter 1's
bigram model (`llmcourse.foundations.bigram`) counted on the same training tokens, so the number
has a baseline.

>>> cfg = CourseModelConfig()
>>> cache_key(cfg) == cache_key(CourseModelConfig())
True
>>> cache_key(cfg) == cache_key(cfg.replace(steps=cfg.steps + 1))
False
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from llmcourse.device import pick_device
from llmcourse.download import cache_dir, sha256_of
from llmcourse.foundations.bigram import BigramModel
from llmcourse.foundations.loss import bits_per_byte
from llmcourse.model.config import ModelConfig, get_preset
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import (
    END_OF_TEXT,
    Tokenizer,
    TokenizerFileError,
    load_tokenizer,
    save_tokenizer,
)
from llmcourse.training.config import TrainConfig, get_train_preset
from llmcourse.training.data import prepare_data
from llmcourse.training.timing import announce
from llmcourse.training.trainer import Trainer

FORMAT = 1  # the layout of a cache entry; part of the key


_SHAPE = get_preset("course")
_RECIPE = get_train_preset("course")


class CourseModelError(RuntimeError):
    """A cached course model cannot be used; the message says why."""


@dataclass(frozen=True)
class CourseModelConfig:
    """The recipe: corpus, tokenizer size, model shape and training budget.

    The defaults train 1.2M parameters on about 1.2M tokens (1,200 steps of 16 windows of 64)
    with the pretraining chapter's trainer: warmup, cosine decay, clipping, fp32 (so that every
    machine trains the same model). About a minute on two cores with AVX-512, three with AVX2
    alone. With warmup, a peak rate of
    3e-3 beats the 1e-3 that a constant rate needs (held-out loss 4.40 against 4.44 nats per
    token on this budget). A vocabulary of 2,048 tokens is small enough
    for so short a run to see every token many times, and large enough that common words are
    single tokens; on this budget it reached a lower loss per character than 512 or 1,024.
    """
    corpus: str = "shakespeare"
    # The shape and the recipe are the `course` presets, which `llmcourse train` runs by default
    vocab_size: int = _SHAPE.vocab_size  # including the end-of-text token
    n_layer: int = _SHAPE.n_layer
    n_head: int = _SHAPE.n_head
    d_model: int = _SHAPE.d_model
    context_length: int = _RECIPE.context_length
    steps: int = _RECIPE.max_steps
    batch_size: int = _RECIPE.batch_size
    lr: float = _RECIPE.lr
    warmup_steps: int = _RECIPE.warmup_steps
    seed: int = _RECIPE.seed

    def __post_init__(self) -> None:
        if not 257 <= self.vocab_size <= 1 << 16:
            raise ValueError(f"vocab_size must be in [257, 65536] (256 bytes, the end-of-text "
                             f"token, and ids stored as uint16), got {self.vocab_size}")
        for name in ("steps", "batch_size", "context_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        self.model_config()  # a shape that cannot work is refused now, not after the data is ready

    def replace(self, **changes: Any) -> CourseModelConfig:
        return dataclasses.replace(self, **changes)

    def model_config(self) -> ModelConfig:
        """The GPT-2-style shape (the `course` preset, resized) that this recipe trains."""
        return get_preset("course", vocab_size=self.vocab_size, context_length=self.context_length,
                          n_layer=self.n_layer, n_head=self.n_head, d_model=self.d_model)


@dataclass
class CourseModel:
    """What `course_model()` returns. `metrics` holds losses in nats per token (unless named per
    character): val_loss, bigram_val_loss, uniform_loss, val_nats_per_char,
    bigram_val_nats_per_char, train_losses (one per step); and train_seconds (the training loop),
    total_seconds (with the tokenizer, the data and the evaluation), train_device, train_tokens,
    val_tokens, chars_per_token."""
    tokenizer: Tokenizer
    model: GPT
    config: CourseModelConfig
    metrics: dict[str, Any]
    path: Path  # the cache entry
    from_cache: bool  # False: trained by this call

    @property
    def eot_id(self) -> int:
        """The end-of-text id, which separates documents in training: a prompt for a new text."""
        return self.tokenizer.special_tokens[END_OF_TEXT]


def cache_key(config: CourseModelConfig) -> str:
    """sha256 of the configuration and of the code (code_fingerprint) of this module and of every
    llmcourse module it imports (code_closure): editing any of them trains a new model."""
    recipe = json.dumps({"format": FORMAT, **dataclasses.asdict(config)}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode())
    for name in code_closure(__name__):
        code = code_fingerprint(module_source(name))
        digest.update(name.encode() + b"\0" + code.encode() + b"\0")
    return digest.hexdigest()


_PACKAGE = Path(__file__).resolve().parents[1]  # the llmcourse folder


def _module_file(name: str) -> Path | None:
    """The file of module or package `name` (llmcourse....), found on disk without importing it."""
    base = _PACKAGE.joinpath(*name.split(".")[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def code_closure(*roots: str) -> tuple[str, ...]:
    """The llmcourse modules that `roots` import, directly or through one another, at the top or
    inside functions, with the packages that hold them: every module whose code can change what
    the roots compute. Read from the sources, so a new module cannot be left out of a cache key.

    >>> closure = code_closure("llmcourse.training.course_model")
    >>> "llmcourse.model.gpt" in closure and "llmcourse.training.trainer" in closure
    True
    >>> "llmcourse.grading.grader" in closure
    False
    """
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent.startswith("llmcourse"):
            todo.append(parent)  # importing a module runs its package's __init__ first
        for node in ast.walk(ast.parse(module_source(name))):
            if isinstance(node, ast.Import):
                named = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from a.b import c`: c may be a module of a.b, or a name defined in it
                named = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            ours = [n for n in named if n.split(".")[0] == "llmcourse"]
            todo += [n for n in ours if _module_file(n) is not None]
    return tuple(sorted(seen))


def module_source(name: str) -> str:
    """The source text of llmcourse module `name`, as its file holds it, read without importing it
    (a loader that rewrites modules, pytest's for one, need not give the source)."""
    path = _module_file(name)
    if path is None:
        raise ModuleNotFoundError(f"no module {name} in {_PACKAGE}")
    return path.read_text(encoding="utf-8")


def code_fingerprint(source: str) -> str:
    """The code of `source` without comments, docstrings and layout (a dump of its syntax tree),
    so that editing prose does not retrain the model.

    >>> with_prose = 'def f(x):\\n    "Twice x."\\n    return 2 * x  # why'
    >>> code_fingerprint(with_prose) == code_fingerprint("def f(x):\\n    return 2*x")
    True
    >>> code_fingerprint(with_prose) == code_fingerprint("def f(x):\\n    return 3 * x")
    False
    """
    tree = ast.parse(source)
    scopes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(node, scopes) and body else None
        docstring = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                     and isinstance(first.value.value, str))
        if docstring:
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@torch.no_grad()
def validation_loss(model: GPT, ids: np.ndarray, batch_size: int = 64) -> float:
    """Mean next-token loss over every token of `ids` after the first, read in windows of the
    model's context (each starts afresh, as in training): the targets of `BigramModel.loss(ids)`."""
    T = model.cfg.context_length
    device = next(model.parameters()).device
    tokens = torch.as_tensor(ids.astype(np.int64))
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    starts = list(range(0, len(tokens) - 1, T))
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        # every window is T long except perhaps the very last: run that one on its own
        full = [s for s in chunk if s + T < len(tokens)]
        for group in (full, [s for s in chunk if s not in full]):
            if not group:
                continue
            n = min(T, len(tokens) - 1 - group[0])
            x = torch.stack([tokens[s:s + n] for s in group]).to(device)
            y = torch.stack([tokens[s + 1:s + n + 1] for s in group]).to(device)
            _, loss = model(x, y)
            total += loss.item() * y.numel()
            count += y.numel()
    model.train(was_training)
    return total / count


def train_config(config: CourseModelConfig) -> TrainConfig:
    """The pretraining recipe that `config` trains with: the `course` preset, in fp32 so that every
    machine trains the same model, and with no evaluation during training (it is measured after)."""
    return get_train_preset("course", batch_size=config.batch_size,
                            context_length=config.context_length, max_steps=config.steps,
                            lr=config.lr, warmup_steps=min(config.warmup_steps, config.steps),
                            eval_every=0, precision="fp32", seed=config.seed)


def _train(config: CourseModelConfig, device: torch.device,
           progress: bool) -> tuple[Tokenizer, GPT, dict]:
    begin = time.perf_counter()
    data = prepare_data(config.corpus, config.vocab_size)
    tokenizer, train_ids, val_ids = data.tokenizer, data.train_ids, data.val_ids
    torch.manual_seed(config.seed)
    model = GPT(config.model_config())
    announce("the course model", model, train_ids, train_config(config), device, progress)
    start = time.perf_counter()
    history = Trainer(model, train_ids, None, train_config(config), progress=progress,
                      device=device).fit()
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    bigram = BigramModel.fit(torch.as_tensor(train_ids.astype(np.int64)), tokenizer.n_vocab)
    val_chars = sum(len(t) for t in data.val_texts)
    val_loss = validation_loss(model, val_ids)
    bigram_loss = bigram.loss(torch.as_tensor(val_ids.astype(np.int64))).item()
    predicted = len(val_ids) - 1  # tokens whose loss is averaged
    metrics = {
        "val_loss": val_loss, "bigram_val_loss": bigram_loss,
        "uniform_loss": math.log(tokenizer.n_vocab),
        "val_bpb": bits_per_byte(val_loss, data.val_bytes_per_token),
        "val_nats_per_char": val_loss * predicted / val_chars,
        "bigram_val_nats_per_char": bigram_loss * predicted / val_chars,
        "train_losses": [m["loss"] for m in history if m["kind"] == "train"],
        "train_seconds": seconds, "train_device": str(device),
        "train_tokens": int(len(train_ids)), "val_tokens": int(len(val_ids)),
        "chars_per_token": sum(len(t) for t in data.train_texts) / len(train_ids),
        "total_seconds": time.perf_counter() - begin,  # tokenizer, data, training and evaluation
    }
    return tokenizer, model, metrics


def write_entry(entry: Path, tokenizer: Tokenizer, model: torch.nn.Module, meta: dict) -> None:
    """A cache entry (model.safetensors, tokenizer.json, meta.json with the weights' sha256),
    written into a temporary folder beside it, then renamed into place (atomic)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
    try:
        save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding and LM head
        save_tokenizer(tokenizer, tmp / "tokenizer.json")
        meta = {**meta, "weights_sha256": sha256_of(tmp / "model.safetensors")}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if entry.exists():  # a corrupt entry being replaced
            shutil.rmtree(entry)
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not entry.exists():  # else another process wrote the same entry first: keep it
            raise


def read_entry(entry: Path, key: str, model: torch.nn.Module) -> tuple[Tokenizer, dict]:
    """Load a cache entry's weights into `model` (its architecture) and its tokenizer, checking each
    file; CourseModelError says what is wrong. Returns the tokenizer and the entry's meta."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CourseModelError(f"{entry / 'meta.json'} is unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("key") != key or meta.get("format") != FORMAT:
        raise CourseModelError(f"{entry / 'meta.json'} belongs to another model or format")
    weights = entry / "model.safetensors"
    if not weights.exists() or sha256_of(weights) != meta.get("weights_sha256"):
        raise CourseModelError(f"{weights} is missing or fails its checksum (truncated or edited)")
    try:
        tokenizer = load_tokenizer(entry / "tokenizer.json")
    except TokenizerFileError as err:
        raise CourseModelError(str(err)) from None
    try:
        load_model(model, str(weights), strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise CourseModelError(f"{weights} does not fit the model: {err}") from None
    model.eval()
    return tokenizer, meta


def _write(entry: Path, key: str, config: CourseModelConfig, tokenizer: Tokenizer, model: GPT,
           metrics: dict) -> None:
    write_entry(entry, tokenizer, model, {"format": FORMAT, "key": key,
                                          "config": dataclasses.asdict(config), "metrics": metrics})


def _read(entry: Path, key: str, config: CourseModelConfig) -> tuple[Tokenizer, GPT, dict]:
    """Load a cache entry, checking each file; CourseModelError says what is wrong."""
    model = GPT(config.model_config())
    tokenizer, meta = read_entry(entry, key, model)
    return tokenizer, model, meta["metrics"]


def course_model(config: CourseModelConfig | None = None, device: torch.device | str | None = None,
                 cache: Path | str | None = None, progress: bool = True) -> CourseModel:
    """The trained course model: from the cache if it holds this recipe, else trained and cached.

    device: where to train (default: the fastest this machine has); the model is returned on the
    CPU, in eval mode. cache: the cache directory (default `llmcourse.download.cache_dir()`). A
    cache entry that fails its checks (a truncated or edited file) is trained again, with a warning
    that says which file was wrong.
    """
    config = CourseModelConfig() if config is None else config
    key = cache_key(config)
    root = Path(cache_dir() if cache is None else cache)
    entry = root / "course_model" / f"{config.corpus}-{key[:16]}"
    if entry.exists():
        try:
            tokenizer, model, metrics = _read(entry, key, config)
            return CourseModel(tokenizer, model, config, metrics, entry, from_cache=True)
        except CourseModelError as err:
            warnings.warn(f"the cached course model cannot be used: {err}; training it again",
                          stacklevel=2)
    where = pick_device(str(device)) if device is not None else pick_device()
    tokenizer, model, metrics = _train(config, where, progress)
    _write(entry, key, config, tokenizer, model, metrics)
    return CourseModel(tokenizer, model, config, metrics, entry, from_cache=False)
