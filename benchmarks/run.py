"""Run the benchmarks and write the tables the book's appendix includes (benchmarks/results.md).

    python benchmarks/run.py             # 3 runs of each measurement, medians, one machine, one sitting
    python benchmarks/run.py --render    # rewrite results.md from the last run's results.json, measuring nothing
    python benchmarks/run.py --only pretraining   # measure one part (tokenization, model, pretraining), keep the rest
    python benchmarks/run.py --only finetuning   # SFT step against llms-from-scratch; LoRA against full
    python benchmarks/run.py --only gpu   # GPT-2 124M on one GPU: tokens/s and MFU (where there is a CUDA GPU)
    python benchmarks/run.py --only chapters   # each chapter's time in the last book build (tools/build_book.py)

Every measurement runs in a fresh process. The runs of the sides of one comparison are interleaved (A B C, A B C, ...)
so that a noisy neighbour slows them alike, and every model measurement uses the same allocator: tcmalloc when the
machine has it (with glibc malloc the large activation buffers of a training step fault in again at every step, and
every side runs far slower), else glibc's.

The raw medians go to results.json; results.md is rendered from them for a reader of the book: what was measured,
the two sides, and what the ratio means. The course's own speed goals are checked on the console, not in the book.
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
CHECKPOINT_CONTEXTS = (256, 512, 1024)  # activation checkpointing is measured at these contexts
LEARN_MINUTES = 5  # the training budget of the learning-per-CPU-minute comparison (one run per side: 2 x 5 minutes)
LFS = "llms-from-scratch"
HF = "transformers"


def run_once(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def medians(runs: list[dict]) -> dict:
    """Numbers: the median over runs; words (such as the weight layout picked): every value seen, joined by '/'."""
    first = runs[0]
    numbers = {key: statistics.median(r[key] for r in runs) for key in first if isinstance(first[key], (int, float))}
    words = {key: "/".join(sorted({r[key] for r in runs})) for key in first if isinstance(first[key], str)}
    return {**numbers, **words}


def measure(script: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """Median of RUNS fresh processes."""
    return medians([run_once(script, *args, env=env) for _ in range(RUNS)])


def measure_interleaved(script: str, jobs: dict[str, tuple[str, ...]], env: dict[str, str] | None = None) -> dict:
    """{name: args} -> {name: medians}, running every job once per round so that all sides share the machine's moods."""
    runs: dict = {name: [] for name in jobs}
    for _ in range(RUNS):
        for name, args in jobs.items():
            runs[name].append(run_once(script, *args, env=env))
    return {name: medians(r) for name, r in runs.items()}


def machine() -> dict:
    import tiktoken
    import tokenizers
    import torch

    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "tokenizers": tokenizers.__version__, "tiktoken": tiktoken.__version__,
            "allocator": "tcmalloc" if TCMALLOC else "glibc malloc", "date": str(date.today())}


def measure_part(part: str) -> dict:
    if part == "tokenization":
        return {"train_ours": measure("tokenizer_bench.py", "train-ours"),
                "train_hf": measure("tokenizer_bench.py", "train-hf"),
                "train_hf_1thread": measure("tokenizer_bench.py", "train-hf", env=SINGLE_THREAD),
                "encode": measure_interleaved("tokenizer_bench.py", {w: (w,) for w in (
                    "encode-python", "encode-fast", "encode-fast-own", "encode-tiktoken")})}
    if part == "model":
        step = {"ours": ("ours", "fp32"), "lfs": ("lfs", "fp32"), "hf": ("hf", "fp32"), "ours-bf16": ("ours", "bf16")}
        return {"step": measure_interleaved("model_bench.py", {k: ("train", *v) for k, v in step.items()}, MODEL_ENV),
                "generate": measure_interleaved("model_bench.py", {w: ("generate", *w.split("/")) for w in (
                    "ours", "ours-row", "ours-nocache", "hf", "ours/bf16", "hf/bf16")}, MODEL_ENV)}
    if part == "finetuning":
        jobs = {f"{what}/{side}/{shape}": (what, side, shape) for shape in ("course", "gpt2")
                for what, sides in (("sft", ("ours", "lfs")), ("lora", ("full", "lora"))) for side in sides}
        return {"finetuning": measure_interleaved("finetune_bench.py", jobs, MODEL_ENV)}
    if part == "grading":
        return {"grading": measure_interleaved("grade_bench.py", {s: (s,) for s in ("plain", "sandbox")})}
    if part == "evaluation":
        jobs = {f"{side}/{shape}": (side, shape) for shape in ("course", "gpt2") for side in ("ours", "hflm")}
        return {"evaluation": measure_interleaved("eval_bench.py", jobs, MODEL_ENV)}
    if part == "chapters":  # measured by the book build itself, which executes every chapter once
        times = HERE.parent / "_build" / "chapter-times.json"
        if not times.exists():
            raise SystemExit(f"{times} is missing: build the book first (LLMCOURSE_PRECISION=fp32 bash "
                             f"scripts/book.sh times the machines without fast bf16)")
        return {"chapters": json.loads(times.read_text())}
    if part == "gpu":  # one run: minutes of GPU time, and a GPU is rarely shared with a noisy neighbour
        return {"gpu": run_once("gpu_bench.py")}
    if part == "checkpointing":
        return {"checkpointing": {str(T): measure("pretrain_bench.py", "checkpointing", str(T), env=MODEL_ENV)
                                  for T in CHECKPOINT_CONTEXTS}}
    loops = {f"{loop}/{p}": ("speed", loop, p) for p in ("fp32", "bf16") for loop in ("trainer", "simple")}
    return {"learn": {side: run_once("pretrain_bench.py", "learn", side, str(LEARN_MINUTES), env=MODEL_ENV)
                      for side in ("ours", "lfs")},
            "loop": measure_interleaved("pretrain_bench.py", loops, MODEL_ENV),
            "overhead": measure("pretrain_bench.py", "overhead", env=MODEL_ENV)}


PARTS = ("tokenization", "model", "pretraining", "checkpointing", "finetuning", "evaluation", "grading", "gpu",
         "chapters")
NEEDS_PEERS = ("model", "pretraining", "finetuning")


def measure_all(parts: tuple[str, ...] = PARTS, results: dict | None = None) -> dict:
    """Measure `parts` into `results` (a previous run's, whose other parts are kept), dating each part."""
    results = dict(results or {})
    if set(parts) - {"gpu", "chapters"}:  # these record their own machine
        results["machine"] = machine()
    dates = results.setdefault("dates", {})
    for part in parts:
        if part in NEEDS_PEERS and not (HERE / ".peers" / "llms_from_scratch").exists():
            print(f"skipping the {part} benchmarks: run benchmarks/install_peers.sh first", file=sys.stderr)
            continue
        results.update(measure_part(part))
        dates[part] = str(date.today())
    return results


def _speed(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x"


def tokenizer_table(r: dict) -> list[str]:
    ours, hf, hf1 = r["train_ours"], r["train_hf"], r["train_hf_1thread"]
    enc = r["encode"]
    py, fast, own, tk = (enc[k]["mb_per_s"] for k in ("encode-python", "encode-fast", "encode-fast-own",
                                                       "encode-tiktoken"))
    more_tokens = enc["encode-fast-own"]["tokens"] / enc["encode-tiktoken"]["tokens"]
    rows = [
        ("BPE training time: 4,096-token vocabulary, 5 MB corpus", f"{ours['seconds']:.2f} s",
         f"HF tokenizers: {hf['seconds']:.2f} s ({hf1['seconds']:.2f} s on one thread)",
         f"takes {ours['seconds'] / hf['seconds']:.1f}x as long"),
        ("peak memory of that training", f"{ours['peak_rss_mb']:.0f} MB", f"HF tokenizers: {hf['peak_rss_mb']:.0f} MB",
         f"{ours['peak_rss_mb'] / hf['peak_rss_mb']:.1f}x the memory"),
        ("encoding speed, pure-Python encoder, GPT-2's vocabulary", f"{py:.1f} MB/s", f"tiktoken: {tk:.1f} MB/s",
         f"{_speed(py, tk)} the speed"),
        ("encoding speed, through tiktoken with `to_tiktoken()`, GPT-2's vocabulary", f"{fast:.1f} MB/s",
         f"tiktoken: {tk:.1f} MB/s", f"{_speed(fast, tk)} the speed"),
        ("encoding speed, through tiktoken, our 4,096-token vocabulary", f"{own:.1f} MB/s",
         f"tiktoken, GPT-2's vocabulary: {tk:.1f} MB/s",
         f"{_speed(own, tk)} the speed, for {more_tokens:.2f}x as many tokens (a smaller vocabulary)"),
    ]
    return _table("Tokenization (Part I)", rows)


def model_table(r: dict) -> list[str]:
    s, g = r["step"], r["generate"]
    tps = {k: v["tokens_per_s"] for k, v in s.items()}
    gps = {k: v["tokens_per_s"] for k, v in g.items()}
    rows = [
        ("training step in fp32: 6 layers, 6 heads, width 384, context 256, batch 8", f"{tps['ours']:.0f} tokens/s",
         f"{LFS} `GPTModel`: {tps['lfs']:.0f} tokens/s", f"{_speed(tps['ours'], tps['lfs'])} the speed"),
        ("the same step", f"{tps['ours']:.0f} tokens/s", f"{HF} `GPT2LMHeadModel` (SDPA): {tps['hf']:.0f} tokens/s",
         f"{_speed(tps['ours'], tps['hf'])} the speed"),
        ("the same step with bf16 autocast (ours), against fp32 (theirs)", f"{tps['ours-bf16']:.0f} tokens/s",
         f"{HF}, fp32: {tps['hf']:.0f} tokens/s", f"{_speed(tps['ours-bf16'], tps['hf'])} the speed"),
        ("peak memory of the fp32 training step", f"{s['ours']['peak_rss_mb']:.0f} MB",
         f"{LFS}: {s['lfs']['peak_rss_mb']:.0f} MB; {HF}: {s['hf']['peak_rss_mb']:.0f} MB",
         f"{s['ours']['peak_rss_mb'] / s['lfs']['peak_rss_mb']:.2f}x and "
         f"{s['ours']['peak_rss_mb'] / s['hf']['peak_rss_mb']:.2f}x the memory"),
        (f"greedy generation at GPT-2 124M's shape, fp32, KV cache, 200 tokens; weights "
         f"{g['ours']['layout']}-major, as `tune_weight_layout` picked in {g['ours']['tuning_s']:.1f} s",
         f"{gps['ours']:.1f} tokens/s", f"{HF} `generate(use_cache=True)`: {gps['hf']:.1f} tokens/s",
         f"{_speed(gps['ours'], gps['hf'])} the speed"),
        ("the same with `nn.Linear`'s row-major weights", f"{gps['ours-row']:.1f} tokens/s",
         f"{HF}: {gps['hf']:.1f} tokens/s", f"{_speed(gps['ours-row'], gps['hf'])} the speed"),
        ("the same, against our own generation without the KV cache", f"{gps['ours']:.1f} tokens/s",
         f"llmcourse without the cache: {gps['ours-nocache']:.1f} tokens/s",
         f"{gps['ours'] / gps['ours-nocache']:.1f}x the speed"),
        (f"generation in bf16 (weights and cache; {g['ours/bf16']['layout']}-major)",
         f"{gps['ours/bf16']:.1f} tokens/s",
         f"{HF}, bf16: {gps['hf/bf16']:.1f} tokens/s", f"{_speed(gps['ours/bf16'], gps['hf/bf16'])} the speed"),
        ("generation, ours in bf16 against theirs in fp32", f"{gps['ours/bf16']:.1f} tokens/s",
         f"{HF}, fp32: {gps['hf']:.1f} tokens/s", f"{_speed(gps['ours/bf16'], gps['hf'])} the speed"),
        ("peak memory of fp32 generation", f"{g['ours']['peak_rss_mb']:.0f} MB",
         f"{HF}: {g['hf']['peak_rss_mb']:.0f} MB",
         f"{g['ours']['peak_rss_mb'] / g['hf']['peak_rss_mb']:.2f}x the memory"),
    ]
    return _table("The model (Part II)", rows)


def pretraining_table(r: dict) -> list[str]:
    ours, lfs = r["learn"]["ours"], r["learn"]["lfs"]
    loop = {k: v["tokens_per_s"] for k, v in r["loop"].items()}
    o = r["overhead"]
    rows = [
        (f"held-out bits per byte after {LEARN_MINUTES} minutes of training, each side with its own recipe "
         f"(lower is better)",
         f"{ours['bpb']:.2f}: `llmcourse train --minutes {LEARN_MINUTES}`, {ours['params'] / 1e6:.1f}M parameters, "
         f"{ours['steps']:,} steps, {ours['train_tokens'] / 1e6:.1f}M tokens, {ours['precision']}",
         f"{LFS} chapter 5: {lfs['bpb']:.2f}, {lfs['params'] / 1e6:.0f}M parameters, {lfs['steps']:,} steps, "
         f"{lfs['train_tokens'] / 1e3:.0f}k tokens, fp32",
         f"{ours['bpb'] / lfs['bpb']:.2f}x the bits per byte"),
        ("training loop speed, the course model's shape, fp32", f"`Trainer`: {loop['trainer/fp32']:,.0f} tokens/s",
         f"{LFS} `train_model_simple`: {loop['simple/fp32']:,.0f} tokens/s",
         f"{_speed(loop['trainer/fp32'], loop['simple/fp32'])} the speed"),
        ("the same in bf16 autocast", f"`Trainer`: {loop['trainer/bf16']:,.0f} tokens/s",
         f"`train_model_simple` in autocast: {loop['simple/bf16']:,.0f} tokens/s",
         f"{_speed(loop['trainer/bf16'], loop['simple/bf16'])} the speed"),
        ("clipping the global gradient norm", f"a step of {o['step_ms']:.0f} ms, with clipping",
         "the same step without clipping", f"{o['clip_pct']:+.1f} % of a step"),
        (f"one evaluation (8 validation batches), every {o['eval_every']} steps as the preset does",
         f"{o['eval_s'] * 1e3:.0f} ms", f"{o['eval_every']} steps: {o['eval_every'] * o['step_ms'] / 1e3:.1f} s",
         f"{o['eval_pct_at_preset']:.1f} % of the training time"),
        ("writing one checkpoint (model, optimizer, generators; atomic, fsync)", f"{o['checkpoint_s'] * 1e3:.0f} ms",
         f"one step: {o['step_ms']:.0f} ms", f"{o['checkpoint_steps']:.1f} steps"),
    ]
    for T, c in r.get("checkpointing", {}).items():
        rows.append((f"activation checkpointing, 6 layers of width 384, batch 8, context {T}: kept for backward, "
                     f"and a forward and backward pass",
                     f"{c['kept_mb_on']:.0f} MB, {c['step_ms_on']:.0f} ms",
                     f"without it: {c['kept_mb_off']:.0f} MB, {c['step_ms_off']:.0f} ms",
                     f"{c['kept_mb_on'] / c['kept_mb_off']:.2f}x the memory, "
                     f"{c['step_ms_on'] / c['step_ms_off'] - 1:+.0%} time"))
    return _table("Pretraining (Part III)", rows)


def finetuning_table(r: dict) -> list[str]:
    f = r["finetuning"]
    shapes = {"course": "the course model (1.1M parameters)", "gpt2": "GPT-2 124M's shape"}
    rows = []
    for shape, name in shapes.items():
        ours, lfs = f[f"sft/ours/{shape}"], f[f"sft/lfs/{shape}"]
        rows.append((f"one SFT step, {name}, batch 8 of the chapter's questions, fp32",
                     f"{ours['step_ms']:.0f} ms, {ours['peak_rss_mb']:.0f} MB peak",
                     f"{LFS} chapter 7: {lfs['step_ms']:.0f} ms, {lfs['peak_rss_mb']:.0f} MB peak",
                     f"{_speed(lfs['step_ms'], ours['step_ms'])} the speed, "
                     f"{ours['peak_rss_mb'] / lfs['peak_rss_mb']:.2f}x the memory"))
    for shape, name in shapes.items():
        full, lora = f[f"lora/full/{shape}"], f[f"lora/lora/{shape}"]
        rows.append((f"LoRA (rank 8, every block matrix) against full fine-tuning, {name}",
                     f"LoRA: {lora['trainable']:,} trained, {lora['step_ms']:.0f} ms, "
                     f"{lora['peak_rss_mb']:.0f} MB peak",
                     f"full: {full['trainable']:,} trained, {full['step_ms']:.0f} ms, "
                     f"{full['peak_rss_mb']:.0f} MB peak",
                     f"{lora['step_ms'] / full['step_ms']:.2f}x the time, "
                     f"{lora['peak_rss_mb'] / full['peak_rss_mb']:.2f}x the memory"))
    return _table("Fine-tuning (Part IV)", rows)


def evaluation_table(r: dict) -> list[str]:
    e = r["evaluation"]
    rows = []
    for shape, name, what in (("course", "the course model", "1,600 continuations and 262 texts"),
                              ("gpt2", "GPT-2 124M's shape", "400 continuations and 52 texts")):
        ours, hflm = e[f"ours/{shape}"], e[f"hflm/{shape}"]
        rows.append((f"lm-eval on the course's local tasks ({what}), {name}, batches of 32",
                     f"`CourseLM`: {ours['seconds']:.1f} s",
                     f"lm-eval's HFLM on transformers: {hflm['seconds']:.1f} s",
                     f"{hflm['seconds'] / ours['seconds']:.2f}x the speed"))
    return _table("Evaluation (Part V)", rows)


def grading_table(r: dict) -> list[str]:
    g = r["grading"]
    plain, boxed = g["plain"]["seconds"], g["sandbox"]["seconds"]
    rows = [("grading chapter 1's solutions notebook (every cell, then 5 exercises), kernel sandboxed",
             f"{boxed:.2f} s", f"the same, unsandboxed: {plain:.2f} s",
             f"{boxed - plain:+.2f} s ({boxed / plain:.2f}x the time)")]
    return _table("Grading", rows)


def gpu_lines(g: dict) -> list[str]:
    nano = (f"nanoGPT's README reports ~135 ms per training step of GPT-2 124M at batch 12 x 1,024 tokens with "
            f"torch.compile, on an A100: ~{round(g['nanogpt_tokens_per_s'], -3):,.0f} tokens/s, "
            f"~{g['nanogpt_mfu']:.0%} MFU by the same FLOP count.")
    if "skipped" in g:
        return ["**One GPU (Part III)**", "",
                f"Not measured: {g['skipped']}. `python benchmarks/run.py --only gpu` measures GPT-2 124M trained by "
                f"the course's `Trainer` in bf16 with torch.compile, in tokens/s and MFU (model FLOPs utilisation: "
                f"the share of the GPU's peak that does the model's arithmetic). The course's goal is at least 50 % "
                f"on an H100. For comparison, {nano}", ""]
    mfu = "an unknown peak" if g["mfu"] is None else f"{g['mfu']:.0%} MFU"
    rows = [(f"GPT-2 124M training step, batch {g['batch']} x {g['context']:,} tokens, {g['precision']}, "
             f"{'torch.compile' if g['compiled'] else 'eager'}, on {g['device']}",
             f"{g['tokens_per_s']:,.0f} tokens/s, {mfu}, {g['peak_memory_gb']:.1f} GB",
             f"nanoGPT on an A100 (published): ~{round(g['nanogpt_tokens_per_s'], -3):,.0f} tokens/s, "
             f"{g['nanogpt_mfu']:.0%} MFU",
             "MFU is the ratio that compares across GPUs")]
    return _table(f"One GPU (Part III), measured on {g['date']}", rows) + [nano, ""]


def _table(title: str, rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = [f"**{title}**", "", "| what is measured | llmcourse | the other side | llmcourse against it |",
             "|---|---|---|---|"]
    return lines + [f"| {' | '.join(row)} |" for row in rows] + [""]


def render(r: dict) -> str:
    m = r["machine"]
    dates = r.get("dates", {})
    cpu_parts = [part for part in PARTS if part in dates and part not in ("gpu", "chapters")]  # they name theirs
    when = ", ".join(f"{part} on {dates[part]}" for part in cpu_parts) or f"on {m['date']}"
    lines = [f"Measured on a machine with {m['cores']} cores ({m['cpu']}), CPU only ({when}): Python "
             f"{m['python']}, torch {m['torch']}, tokenizers {m['tokenizers']}, tiktoken {m['tiktoken']}; the model "
             f"benchmarks ran with {m['allocator']}. Each number is the median of {RUNS} runs, except the "
             f"{LEARN_MINUTES}-minute training runs: one each.", ""]
    lines += tokenizer_table(r)
    if "step" in r:
        lines += model_table(r)
    if "learn" in r:
        lines += pretraining_table(r)
    if "finetuning" in r:
        lines += finetuning_table(r)
    if "evaluation" in r:
        lines += evaluation_table(r)
    if "grading" in r:
        lines += grading_table(r)
    if "gpu" in r:
        lines += gpu_lines(r["gpu"])
    if "chapters" in r:
        lines += chapter_lines(r["chapters"])
    return "\n".join(lines)


CHAPTER_BUDGET = 240  # seconds: every chapter runs on a 2-core CPU in four minutes, in fp32


def chapter_lines(t: dict) -> list[str]:
    """The book build's execution time of each chapter, against the four-minute budget."""
    m = t["machine"]
    features = ", ".join(m["features"]) or "no AVX2"
    lines = ["**Each chapter, executed top to bottom**", "",
             f"The book build executes every chapter once (on {t['date']}: {m['cpu']}, {m['cores']} cores with "
             f"{features}; `auto` precision ran as {m['precision']}, LLMCOURSE_PRECISION {m['setting']}; "
             f"{m['allocator']} malloc). The budget is {CHAPTER_BUDGET} s a chapter on two cores in fp32. The "
             f"first chapter that needs a stage model (the course model, SFT, DPO) trains and caches it, and "
             f"its time includes that training.", "",
             "| chapter | seconds | within the budget |", "|---|---|---|"]
    for name, seconds in t["chapters"].items():
        lines.append(f"| {name} | {seconds:.0f} | {'yes' if seconds <= CHAPTER_BUDGET else 'no'} |")
    lines.append(f"| all chapters | {sum(t['chapters'].values()):.0f} | |")
    return lines + [""]


# (what, the ratio it is measured by, the goal the course set for it): checked on the console after each run
GOALS = [
    ("BPE training within 10x of HF tokenizers", lambda r: r["train_hf"]["seconds"] / r["train_ours"]["seconds"], 0.1),
    ("to_tiktoken() encoding at 0.9x tiktoken",
     lambda r: r["encode"]["encode-fast"]["mb_per_s"] / r["encode"]["encode-tiktoken"]["mb_per_s"], 0.9),
    ("fp32 training step 1.5x llms-from-scratch",
     lambda r: r["step"]["ours"]["tokens_per_s"] / r["step"]["lfs"]["tokens_per_s"], 1.5),
    ("fp32 training step 1.1x transformers",
     lambda r: r["step"]["ours"]["tokens_per_s"] / r["step"]["hf"]["tokens_per_s"], 1.1),
    ("bf16 training step 1.6x transformers in fp32",
     lambda r: r["step"]["ours-bf16"]["tokens_per_s"] / r["step"]["hf"]["tokens_per_s"], 1.6),
    ("generation 1.2x transformers",
     lambda r: r["generate"]["ours"]["tokens_per_s"] / r["generate"]["hf"]["tokens_per_s"], 1.2),
    ("learning per CPU minute: bits per byte at most 0.85x llms-from-scratch's (their bpb / ours >= 1/0.85)",
     lambda r: r["learn"]["lfs"]["bpb"] / r["learn"]["ours"]["bpb"], 1 / 0.85),
    ("GPT-2 124M training at 50 % MFU or more on an H100", lambda r: _h100_mfu(r) / 0.5, 1.0),
    ("KV cache 5x no cache",
     lambda r: r["generate"]["ours"]["tokens_per_s"] / r["generate"]["ours-nocache"]["tokens_per_s"], 5.0),
]


def _h100_mfu(r: dict) -> float:
    if "H100" not in r["gpu"].get("device", ""):
        raise KeyError("not measured on an H100")
    return r["gpu"]["mfu"]


def check_goals(r: dict) -> None:
    for what, ratio, goal in GOALS:
        try:
            value = ratio(r)
        except (KeyError, TypeError):
            continue  # not measured in this run (or on a GPU whose peak is unknown)
        print(f"{'met    ' if value >= goal else 'NOT met'}  {what}: {value:.2f} (goal {goal})")


def main(argv: list[str]) -> None:
    previous = HERE / "results.json"
    if "--render" in argv:
        results = json.loads(previous.read_text())
    elif "--only" in argv:
        part = argv[argv.index("--only") + 1]
        if part not in PARTS:
            raise SystemExit(f"--only takes one of {', '.join(PARTS)}, got {part!r}")
        results = measure_all((part,), json.loads(previous.read_text()) if previous.exists() else None)
    else:
        results = measure_all()
    if "--render" not in argv:
        previous.write_text(json.dumps(results, indent=1) + "\n")
    text = render(results)
    (HERE / "results.md").write_text(text)
    print(text)
    check_goals(results)


if __name__ == "__main__":
    main(sys.argv[1:])
