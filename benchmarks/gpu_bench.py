"""GPT-2 124M training on one GPU: tokens/s and MFU, beside nanoGPT's published figure. Prints one
JSON line last.

    python benchmarks/gpu_bench.py                    # on a CUDA GPU; elsewhere prints {"skipped": ...}
    python benchmarks/gpu_bench.py --batch 32 --steps 50
    python benchmarks/gpu_bench.py --device cpu --model tiny --context 64 --batch 2 --steps 2 --no-compile

What runs: the course's `Trainer` on our GPT at GPT-2's shape (context 1024, the vocabulary padded
to 50,304 as nanoGPT pads it), bf16 autocast, `torch.compile`, fused AdamW, gradient clipping; on
random tokens, since speed does not depend on the text. The first steps compile and are not timed.

MFU = training FLOPs per token (`llmcourse.model.sizing.flops_per_token`: 6 per weight of every matrix
multiply, plus the attention scores) x tokens/s / the GPU's dense bf16 peak.

nanoGPT's README: torch.compile cut a training iteration of GPT-2 124M from ~250 ms to ~135 ms
(its bench.py: batch 12 x 1,024 tokens, on the A100s the README uses throughout). That is ~91,000
tokens/s, and by the same FLOP count ~25 % of an A100's 312 TFLOP/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date

import numpy as np
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.model.sizing import GPU_PEAK_FLOPS, flops_per_token
from llmcourse.training import Trainer, get_train_preset

NANOGPT = {"ms_per_iter": 135.0, "batch": 12, "context": 1024, "gpu": "A100 (bf16)"}
# the entry of GPU_PEAK_FLOPS for a device name (an H200 is an H100's chip with more memory)
PEAKS = {"H100": "H100 SXM (bf16)", "H200": "H100 SXM (bf16)", "A100": "A100 (bf16)", "T4": "T4 (fp16)"}
WARMUP = 5  # untimed steps: torch.compile traces and tunes in the first ones


def peak_of(device: torch.device) -> tuple[str, float | None]:
    """The device's name and dense bf16 peak in FLOP/s (None where the course does not know it)."""
    if device.type != "cuda":
        return device.type, None
    name = torch.cuda.get_device_name(device)
    key = next((k for k in PEAKS if k in name), None)
    return name, GPU_PEAK_FLOPS[PEAKS[key]] if key else None


def nanogpt_figures() -> dict:
    cfg = get_preset("gpt2", vocab_size=50304)
    tokens_per_s = NANOGPT["batch"] * NANOGPT["context"] / (NANOGPT["ms_per_iter"] / 1e3)
    mfu = flops_per_token(cfg, NANOGPT["context"]) * tokens_per_s / GPU_PEAK_FLOPS[NANOGPT["gpu"]]
    return {"nanogpt_tokens_per_s": tokens_per_s, "nanogpt_mfu": mfu}


def bench(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.set_float32_matmul_precision("high")  # TF32 for whatever runs outside autocast
    cfg = get_preset(args.model, vocab_size=50304, context_length=args.context)
    torch.manual_seed(0)
    model = GPT(cfg)
    precision = "bf16" if device.type == "cuda" else "fp32"
    train = get_train_preset(
        "course-gpu",
        batch_size=args.batch,
        context_length=args.context,
        precision=precision,
        compile=not args.no_compile,
        max_steps=WARMUP + args.steps,
        warmup_steps=1,
        eval_every=0,
    )
    tokens = np.random.default_rng(0).integers(0, 50257, 2_000_000).astype(np.uint16)
    trainer = Trainer(model, tokens, None, train, progress=False, device=device)
    for _ in range(WARMUP):
        trainer.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step()  # ends with .item() on the loss: the step is done when it returns
    seconds = time.perf_counter() - start
    tokens_per_s = args.steps * train.tokens_per_step / seconds
    name, peak = peak_of(device)
    flops = flops_per_token(cfg, args.context)
    return {
        "device": name,
        "date": str(date.today()),
        "torch": torch.__version__,
        "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "context": args.context,
        "precision": precision,
        "compiled": not args.no_compile,
        "ms_per_step": seconds / args.steps * 1e3,
        "tokens_per_s": tokens_per_s,
        "mfu": flops * tokens_per_s / peak if peak else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 1e9
        if device.type == "cuda"
        else None,
        **nanogpt_figures(),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else None)
    parser.add_argument("--model", default="gpt2", help="model preset (default: gpt2, 124M)")
    parser.add_argument("--batch", type=int, default=16, help="sequences per step (default 16)")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (default 30)")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    if args.device is None:
        result = {"skipped": "no CUDA GPU on this machine", **nanogpt_figures()}
    else:
        result = bench(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
