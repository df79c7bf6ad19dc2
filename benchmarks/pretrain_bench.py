"""Part III benchmarks, one measurement per process (prints one JSON line last):

    python benchmarks/pretrain_bench.py learn {ours,lfs} MINUTES     # held-out bits per byte after MINUTES of training
    python benchmarks/pretrain_bench.py speed {trainer,simple} {fp32,bf16}   # training tokens/s of the two loops
    python benchmarks/pretrain_bench.py overhead                      # the trainer's features, in % of a step
    python benchmarks/pretrain_bench.py checkpointing T               # activation checkpointing at context T

`learn`: each side with its own recipe, as a learner would run it, on the same documents of chapter 2's split.
- ours: `llmcourse train --minutes MINUTES` (the course recipe; its defaults), run as a learner runs it.
- lfs: llms-from-scratch's chapter 5: GPT_CONFIG_124M (dropout 0.1, no qkv bias), AdamW(lr 4e-4, weight decay 0.1),
  `create_dataloader_v1` (batch 2, windows of 256, stride 256, shuffled) over GPT-2's tokenizer, and
  `train_model_simple` with eval_freq 5, eval_iter 5, stopped when the budget is spent.
Both are then scored by the same function: mean next-token loss over every held-out token (windows of the model's
context), in bits per byte, so the two tokenizers compare.

`speed`: the same model (the course shape, our GPT) trained by our `Trainer` and by `train_model_simple`, in fp32 and
in bf16 autocast (for `train_model_simple`, the autocast a learner would wrap around it).

`overhead`: per-step time of the trainer without clipping, with it; one evaluation and one checkpoint, as steps.

`checkpointing`: a 6-layer GPT (width 384, a 2,048-token vocabulary, batch 8) at context T, with and without
activation checkpointing: the bytes autograd keeps for backward, and the time of a forward and backward pass.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / ".peers"))  # llms-from-scratch, installed by install_peers.sh

SPEED_STEPS, SPEED_WARMUP = 60, 5
HELDOUT_CHARS = 16_000  # scored text: the start of each held-out play (64 kB), so a 124M model scores it in seconds


@torch.no_grad()
def heldout_loss(logits_of, ids: np.ndarray, context: int, batch: int = 16) -> float:
    """Mean next-token loss (nats) over every token of `ids` after the first, in windows of `context` tokens."""
    tokens = torch.as_tensor(ids.astype(np.int64))
    starts = list(range(0, len(tokens) - context - 1, context))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x = torch.stack([tokens[s:s + context] for s in starts[i:i + batch]])
        y = torch.stack([tokens[s + 1:s + context + 1] for s in starts[i:i + batch]])
        logits = logits_of(x)
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
        count += y.numel()
    return total / count


def split_texts() -> tuple[list[str], list[str]]:
    """The training plays and the held-out plays of chapter 2's split, which `llmcourse train` uses too."""
    from llmcourse.data.cleaning import clean_split
    from llmcourse.data.corpus import load_corpus

    train_docs, val_docs = clean_split(load_corpus("shakespeare"))
    return [d.text for d in train_docs], [d.text for d in val_docs]


def scored_texts() -> list[str]:
    return [text[:HELDOUT_CHARS] for text in split_texts()[1]]


def learn_ours(minutes: float) -> dict:
    from llmcourse.foundations.loss import bits_per_byte
    from llmcourse.training.run_folder import load_run
    from llmcourse.training.data import encode_documents

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "llmcourse", "train", "--minutes", str(minutes), "--out", str(run)],
                       check=True, stdout=sys.stderr, env={**os.environ, "TQDM_DISABLE": "1"})
        wall = time.perf_counter() - start
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        model, tokenizer = load_run(run)
        config = json.loads((run / "run.json").read_text())["train_config"]
    val_texts = scored_texts()
    val_ids = encode_documents(tokenizer, val_texts)
    loss = heldout_loss(model, val_ids, model.cfg.context_length)
    bytes_per_token = sum(len(t.encode()) for t in val_texts) / len(val_ids)
    from llmcourse.training.precision import resolve_precision

    train = [m for m in metrics if m["kind"] == "train"]
    return {"bpb": bits_per_byte(loss, bytes_per_token), "val_loss": loss, "steps": len(train),
            "train_tokens": train[-1]["tokens"], "params": sum(p.numel() for p in model.parameters()),
            "precision": resolve_precision(config["precision"], torch.device("cpu")), "wall_s": wall}


class BudgetSpent(Exception):
    pass


class Deadline:
    """A data loader that raises BudgetSpent once the time budget is spent: train_model_simple has no budget of its
    own, and ending only the epoch would let it start the next ones (each ends with a sample)."""

    def __init__(self, loader, seconds: float) -> None:
        self.loader, self.seconds, self.start = loader, seconds, None
        self.batches = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        if self.start is None:
            self.start = time.perf_counter()
        for batch in self.loader:
            if time.perf_counter() - self.start > self.seconds:
                raise BudgetSpent
            self.batches += 1
            yield batch


def lfs_model(dropout: float = 0.1):
    from llms_from_scratch.ch04 import GPTModel

    config = {"vocab_size": 50257, "context_length": 256, "emb_dim": 768, "n_heads": 12, "n_layers": 12,
              "drop_rate": dropout, "qkv_bias": False}  # ch05's GPT_CONFIG_124M
    return GPTModel(config), config


def gpt2_encoding():
    """tiktoken's "gpt2" encoding from the same BPE file tiktoken downloads, which the course fetches through a
    package registry and verifies (load_gpt2). It is registered under its name, so that llms-from-scratch's
    `tiktoken.get_encoding("gpt2")` finds it without the network."""
    import tiktoken
    import tiktoken.registry

    from llmcourse.tokenizer import GPT2_PATTERN, load_gpt2

    encoding = tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=load_gpt2().ranks,
                                 special_tokens={"<|endoftext|>": 50256})
    tiktoken.registry.ENCODINGS["gpt2"] = encoding
    return encoding


def learn_lfs(minutes: float) -> dict:
    from llms_from_scratch.ch02 import create_dataloader_v1
    from llms_from_scratch.ch05 import train_model_simple

    from llmcourse.foundations.loss import bits_per_byte

    tokenizer = gpt2_encoding()
    train_texts, _ = split_texts()
    val_texts = scored_texts()
    eot = "<|endoftext|>"
    train_text, val_text = eot.join(train_texts) + eot, eot.join(val_texts) + eot
    torch.manual_seed(123)
    model, config = lfs_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    loader_args = dict(batch_size=2, max_length=config["context_length"], stride=config["context_length"])
    train_loader = create_dataloader_v1(train_text, drop_last=True, shuffle=True, num_workers=0, **loader_args)
    val_loader = create_dataloader_v1(val_text, drop_last=False, shuffle=False, num_workers=0, **loader_args)
    timed = Deadline(train_loader, minutes * 60)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr), contextlib.suppress(BudgetSpent):  # stdout: its progress prints
        train_model_simple(model, timed, val_loader, optimizer, "cpu", num_epochs=10, eval_freq=5, eval_iter=5,
                           start_context="Every effort moves you", tokenizer=tokenizer)
    wall = time.perf_counter() - start
    model.eval()
    val_ids = np.array(tokenizer.encode(val_text, allowed_special={eot}), dtype=np.int64)
    loss = heldout_loss(model, val_ids, config["context_length"])
    bytes_per_token = sum(len(t.encode()) for t in val_texts) / len(val_ids)
    return {"bpb": bits_per_byte(loss, bytes_per_token), "val_loss": loss, "steps": timed.batches,
            "train_tokens": timed.batches * 2 * config["context_length"],
            "params": sum(p.numel() for p in model.parameters()), "precision": "fp32", "wall_s": wall}


def course_setup():
    from llmcourse.model.config import get_preset
    from llmcourse.model.gpt import GPT
    from llmcourse.training.config import get_train_preset

    tokens = np.random.default_rng(0).integers(0, 2048, 400_000).astype(np.uint16)
    torch.manual_seed(0)
    return GPT(get_preset("course")), tokens, get_train_preset("course")


def speed(loop: str, precision: str) -> dict:
    model, tokens, cfg = course_setup()
    steps = SPEED_WARMUP + SPEED_STEPS
    if loop == "trainer":
        from llmcourse.training.trainer import Trainer

        trainer = Trainer(model, tokens, None, cfg.replace(max_steps=steps, precision=precision, eval_every=0),
                          progress=False)
        trainer.fit(stop_after=SPEED_WARMUP)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
        return {"tokens_per_s": SPEED_STEPS * cfg.tokens_per_step / seconds}
    from llms_from_scratch.ch05 import train_model_simple

    # the same batches a learner's DataLoader would give: random windows, as tensors
    generator = torch.Generator().manual_seed(0)
    windows = torch.as_tensor(tokens.astype(np.int64))
    starts = torch.randint(0, len(windows) - cfg.context_length - 1, (steps, cfg.batch_size), generator=generator)
    batches = [(torch.stack([windows[s:s + cfg.context_length] for s in row]),
                torch.stack([windows[s + 1:s + cfg.context_length + 1] for s in row])) for row in starts]
    stamps = []

    class Timed:
        def __len__(self):
            return len(batches)

        def __iter__(self):
            for batch in batches:
                stamps.append(time.perf_counter())
                yield batch
            stamps.append(time.perf_counter())  # the last step has finished

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    with autocast, contextlib.redirect_stdout(sys.stderr), contextlib.suppress(AttributeError):
        # eval_freq beyond the run: no evaluations; the sample it prints after the epoch needs a tokenizer, which
        # this timing does not give it (the AttributeError is suppressed), and comes after the timed steps anyway
        train_model_simple(model, Timed(), Timed(), optimizer, "cpu", num_epochs=1, eval_freq=10 ** 9,
                           eval_iter=1, start_context="a", tokenizer=None)
    seconds = stamps[-1] - stamps[SPEED_WARMUP]
    return {"tokens_per_s": SPEED_STEPS * cfg.tokens_per_step / seconds}


def overhead() -> dict:
    from llmcourse.training.trainer import Trainer

    model, tokens, cfg = course_setup()
    cfg = cfg.replace(precision="fp32", eval_every=0, max_steps=10_000)

    def per_step(trainer: Trainer, steps: int = 60) -> float:
        for _ in range(5):
            trainer.train_step()
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        return (time.perf_counter() - start) / steps

    # interleaved rounds, so that both settings share the machine's moods
    bare = Trainer(model, tokens, tokens, cfg.replace(grad_clip=None), progress=False)
    clipped = Trainer(course_setup()[0], tokens, tokens, cfg, progress=False)
    plain, clip = [], []
    for _ in range(3):
        plain.append(per_step(bare))
        clip.append(per_step(clipped))
    step = float(np.median(plain))
    start = time.perf_counter()
    clipped.evaluate()
    evaluation = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        clipped.out_dir = Path(tmp)
        start = time.perf_counter()
        clipped.save()
        checkpoint = time.perf_counter() - start
    preset = course_setup()[2]
    return {"step_ms": 1e3 * step, "clip_pct": 100 * (float(np.median(clip)) - step) / step,
            "eval_s": evaluation, "eval_pct_at_preset": 100 * evaluation / (preset.eval_every * step),
            "eval_every": preset.eval_every, "checkpoint_s": checkpoint, "checkpoint_steps": checkpoint / step}


def checkpointing(context: int, repeats: int = 5) -> dict:
    from llmcourse.model.config import get_preset
    from llmcourse.model.gpt import GPT
    from llmcourse.training.memory import activation_bytes

    cfg = get_preset("gpt2", n_layer=6, n_head=6, d_model=384, vocab_size=2048, context_length=context)
    torch.manual_seed(0)
    model = GPT(cfg)
    ids = torch.randint(0, cfg.vocab_size, (8, context), generator=torch.Generator().manual_seed(0))
    out = {}
    times = {False: [], True: []}
    for on in (False, True):
        model.checkpoint_blocks = on
        out[f"kept_mb_{'on' if on else 'off'}"] = activation_bytes(model, ids) / 2**20
        model(ids, ids)[1].backward()  # warm-up
    for _ in range(repeats):  # interleaved, so that both share the machine's moods
        for on in (False, True):
            model.checkpoint_blocks = on
            start = time.perf_counter()
            model(ids, ids)[1].backward()
            times[on].append(time.perf_counter() - start)
    out["step_ms_off"] = 1e3 * float(np.median(times[False]))
    out["step_ms_on"] = 1e3 * float(np.median(times[True]))
    return out


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "learn":
        result = (learn_ours if args[0] == "ours" else learn_lfs)(float(args[1]))
    elif mode == "speed":
        result = speed(*args)
    elif mode == "checkpointing":
        result = checkpointing(int(args[0]))
    else:
        result = overhead()
    print(json.dumps(result))
