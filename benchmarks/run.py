"""Run the benchmarks and write the results table the book's appendix includes (benchmarks/results.md).

    python benchmarks/run.py            # 3 runs of each measurement, medians, one machine, one sitting

Speed goals are checked here, as ratios against peers measured in the same run, never in timed tests. The runs of
the sides of one comparison are interleaved (A B C, A B C, ...) so that a noisy neighbour slows them alike, and every
model measurement uses the same allocator: tcmalloc when the machine has it (with glibc malloc the large activation
buffers of a training step fault in again at every step, and every side runs far slower), else glibc's.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = 3
SINGLE_THREAD = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


TCMALLOC = next(iter(sorted(Path("/usr/lib").glob("*/libtcmalloc_minimal.so.4"))), None)
MODEL_ENV = {"LD_PRELOAD": str(TCMALLOC)} if TCMALLOC else {}


def run_once(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def medians(runs: list[dict]) -> dict:
    """Numbers: the median over runs; words (such as the weight layout picked): every value seen, joined by '/'."""
    numbers = {key: statistics.median(r[key] for r in runs) for key in runs[0] if isinstance(runs[0][key], (int, float))}
    words = {key: "/".join(sorted({r[key] for r in runs})) for key in runs[0] if isinstance(runs[0][key], str)}
    return {**numbers, **words}


def measure(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Median of RUNS fresh processes."""
    return medians([run_once(script, *args, env=env) for _ in range(RUNS)])


def measure_interleaved(script: str, jobs: dict, env: dict[str, str] | None = None) -> dict:
    """{name: args} -> {name: medians}, running every job once per round so that all sides share the machine's moods."""
    runs: dict = {name: [] for name in jobs}
    for _ in range(RUNS):
        for name, args in jobs.items():
            runs[name].append(run_once(script, *args, env=env))
    return {name: medians(r) for name, r in runs.items()}


def machine() -> str:
    import tiktoken
    import tokenizers
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return (f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}, "
            f"tokenizers {tokenizers.__version__}, tiktoken {tiktoken.__version__}; "
            f"model benchmarks with {'tcmalloc' if TCMALLOC else 'glibc malloc'}; {date.today()}")


def model_rows() -> list[tuple[str, str, str, str]]:
    t = measure_interleaved("model_bench.py", {(w, p): ("train", w, p) for w, p in
                            [("ours", "fp32"), ("lfs", "fp32"), ("hf", "fp32"), ("ours", "bf16")]}, MODEL_ENV)
    ours = t[("ours", "fp32")]
    rows = [("training step, 6L/6H/d384, ctx 256 x batch 8, fp32", f"{ours['tokens_per_s']:.0f} tokens/s",
             f"llms-from-scratch GPTModel {t[('lfs', 'fp32')]['tokens_per_s']:.0f} tokens/s",
             f"{ours['tokens_per_s'] / t[('lfs', 'fp32')]['tokens_per_s']:.2f}x (target: 1.5x)"),
            ("same, against HF GPT2LMHeadModel (sdpa)", f"{ours['tokens_per_s']:.0f} tokens/s",
             f"HF {t[('hf', 'fp32')]['tokens_per_s']:.0f} tokens/s",
             f"{ours['tokens_per_s'] / t[('hf', 'fp32')]['tokens_per_s']:.2f}x (target: 1.1x)"),
            ("same with bf16 autocast, against HF in fp32", f"{t[('ours', 'bf16')]['tokens_per_s']:.0f} tokens/s",
             f"HF {t[('hf', 'fp32')]['tokens_per_s']:.0f} tokens/s",
             f"{t[('ours', 'bf16')]['tokens_per_s'] / t[('hf', 'fp32')]['tokens_per_s']:.2f}x (target: 1.6x)"),
            ("peak memory of the fp32 training step", f"{ours['peak_rss_mb']:.0f} MB",
             f"LFS {t[('lfs', 'fp32')]['peak_rss_mb']:.0f} MB, HF {t[('hf', 'fp32')]['peak_rss_mb']:.0f} MB", "")]
    g = measure_interleaved("model_bench.py", {w: ("generate", *w.split("/")) for w in
                            ("ours", "ours-row", "ours-nocache", "hf", "ours/bf16", "hf/bf16")}, MODEL_ENV)
    rows += [("greedy generation, GPT-2 124M shape, 200 tokens, KV cache, weight layout picked by "
              f"tune_weight_layout ({g['ours']['layout']}-major, {g['ours']['tuning_s']:.1f} s to pick)",
              f"{g['ours']['tokens_per_s']:.1f} tokens/s",
              f"HF generate(use_cache=True) {g['hf']['tokens_per_s']:.1f} tokens/s",
              f"{g['ours']['tokens_per_s'] / g['hf']['tokens_per_s']:.2f}x (target: 1.2x)"),
             ("same with nn.Linear's row-major weights, against HF", f"{g['ours-row']['tokens_per_s']:.1f} tokens/s",
              f"HF {g['hf']['tokens_per_s']:.1f} tokens/s",
              f"{g['ours-row']['tokens_per_s'] / g['hf']['tokens_per_s']:.2f}x"),
             ("same, against our own path without the cache", f"{g['ours']['tokens_per_s']:.1f} tokens/s",
              f"no cache {g['ours-nocache']['tokens_per_s']:.1f} tokens/s",
              f"{g['ours']['tokens_per_s'] / g['ours-nocache']['tokens_per_s']:.1f}x (target: 5x)"),
             (f"same in bf16 (weights and KV cache; {g['ours/bf16']['layout']}-major), against HF in bf16",
              f"{g['ours/bf16']['tokens_per_s']:.1f} tokens/s",
              f"HF {g['hf/bf16']['tokens_per_s']:.1f} tokens/s",
              f"{g['ours/bf16']['tokens_per_s'] / g['hf/bf16']['tokens_per_s']:.2f}x"),
             ("ours in bf16, against HF in fp32", f"{g['ours/bf16']['tokens_per_s']:.1f} tokens/s",
              f"HF {g['hf']['tokens_per_s']:.1f} tokens/s",
              f"{g['ours/bf16']['tokens_per_s'] / g['hf']['tokens_per_s']:.2f}x (half the bytes per weight)"),
             ("peak memory of generation", f"{g['ours']['peak_rss_mb']:.0f} MB", f"HF {g['hf']['peak_rss_mb']:.0f} MB",
              "")]
    return rows


def main() -> None:
    rows = []
    ours, hf1 = measure("tokenizer_bench.py", "train-ours"), measure("tokenizer_bench.py", "train-hf", env=SINGLE_THREAD)
    hf = measure("tokenizer_bench.py", "train-hf")
    rows.append(("BPE training, vocab 4096, 5 MB corpus", f"{ours['seconds']:.2f} s",
                 f"HF tokenizers {hf['seconds']:.2f} s ({hf1['seconds']:.2f} s on 1 thread)",
                 f"{ours['seconds'] / hf['seconds']:.1f}x slower (target: within 10x)"))
    rows.append(("peak memory of that training", f"{ours['peak_rss_mb']:.0f} MB", f"HF {hf['peak_rss_mb']:.0f} MB",
                 f"{ours['peak_rss_mb'] / hf['peak_rss_mb']:.1f}x"))
    enc = measure_interleaved("tokenizer_bench.py", {w: (w,) for w in
                              ("encode-python", "encode-fast", "encode-fast-own", "encode-tiktoken")})
    py, fast, own, tk = enc["encode-python"], enc["encode-fast"], enc["encode-fast-own"], enc["encode-tiktoken"]
    rows.append(("encoding, pure Python (GPT-2 vocabulary)", f"{py['mb_per_s']:.1f} MB/s",
                 f"tiktoken {tk['mb_per_s']:.1f} MB/s", f"{py['mb_per_s'] / tk['mb_per_s']:.2f}x"))
    rows.append(("encoding, fast path to_tiktoken() (GPT-2 vocabulary)", f"{fast['mb_per_s']:.1f} MB/s",
                 f"tiktoken {tk['mb_per_s']:.1f} MB/s", f"{fast['mb_per_s'] / tk['mb_per_s']:.2f}x (target: 0.9x)"))
    rows.append(("encoding, fast path with our 4096 vocabulary", f"{own['mb_per_s']:.1f} MB/s",
                 f"tiktoken GPT-2 {tk['mb_per_s']:.1f} MB/s",
                 f"{own['mb_per_s'] / tk['mb_per_s']:.2f}x (a smaller vocabulary: {own['tokens'] / tk['tokens']:.2f}x "
                 f"the tokens)"))
    if (HERE / ".peers" / "llms_from_scratch").exists():
        rows += model_rows()
    else:
        print("skipping the model benchmarks: run benchmarks/install_peers.sh first", file=sys.stderr)
    table = ["| benchmark | llmcourse | peer | ratio |", "|---|---|---|---|"]
    table += [f"| {' | '.join(row)} |" for row in rows]
    text = "\n".join(["Measured on: " + machine(), "", *table, ""])
    (HERE / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
