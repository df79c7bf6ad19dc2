"""What the CPU tests cannot prove, checked on a CUDA GPU in a few minutes (`scripts/gpu_check.sh`
runs it). Each check runs the real command lines as a learner would, and prints one row:

1. `llmcourse train` on the GPU: stopped by Ctrl-C, resumed, and bit-identical to a run that was
   never stopped (the checkpoint's RNG states and tensors must load onto CUDA).
2. `torchrun` with one process per GPU (at least 1), ddp and fsdp on NCCL: the losses of one
   process within bf16's tolerance (every collective must build its tensors on the GPU).
3. One step of `llmcourse sft` and of `llmcourse dpo` on CUDA.
4. The GPT-2 124M throughput benchmark (`benchmarks/gpu_bench.py`), with its MFU.

    python scripts/gpu_check.py                  # on a CUDA GPU
    python scripts/gpu_check.py --device cpu     # the same checks on the CPU, at the smoke size

Without a GPU (and without --device cpu) it says so and exits 0. The last line is a JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(ROOT)}


def llmcourse(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmcourse", *args]


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """The command's result; one that hangs past `timeout` fails (exit code 124) instead of
    ending the check without its summary."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV,
                              cwd=ROOT)
    except subprocess.TimeoutExpired as err:
        return subprocess.CompletedProcess(command, 124, "", f"timed out after {err.timeout} s")


def losses(folder: Path) -> list[float]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [m["loss"] for m in map(json.loads, lines) if m["kind"] == "train"]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)["model"]


def check_resume(train: list[str], work: Path) -> dict:
    """An uninterrupted run, and one stopped by SIGINT (Ctrl-C) then resumed: equal weights."""
    whole = run(llmcourse(*train, "--out", str(work / "whole")))
    if whole.returncode:
        return {"ok": False, "error": whole.stderr[-2000:]}
    stopped = work / "stopped"
    process = subprocess.Popen(llmcourse(*train, "--out", str(stopped)), env=ENV, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = stopped / "metrics.jsonl"
    while process.poll() is None and (not metrics.exists() or
                                      len(metrics.read_text().splitlines()) < 5):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=120)
    if process.returncode not in (0, 130):
        return {"ok": False, "error": error[-2000:]}
    resumed = run(llmcourse("train", "--out", str(stopped), "--resume", "--no-png"))
    if resumed.returncode:
        return {"ok": False, "error": resumed.stderr[-2000:]}
    a, b = weights(work / "whole"), weights(stopped)
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # a run that ended before Ctrl-C reached it proves nothing about resuming
    interrupted = process.returncode == 130
    return {"ok": same and interrupted, "interrupted": interrupted,
            "same_losses": losses(work / "whole") == losses(stopped)}


def check_torchrun(train: list[str], work: Path, processes: int, rtol: float) -> dict:
    """ddp and fsdp on `processes` processes against one process, by their losses. With one GPU
    torchrun starts a single process, which trains without a process group: nothing to check."""
    if processes < 2:
        note = "one GPU: torchrun runs a single process, without collectives"
        return {s: {"ok": None, "note": note} for s in ("ddp", "fsdp")}
    out = {}
    for strategy in ("ddp", "fsdp"):
        folder = work / strategy
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", "-m", "llmcourse", *train,
                   "--strategy", strategy, "--out", str(folder)]
        done = run(command)
        if done.returncode:
            out[strategy] = {"ok": False, "error": done.stderr[-2000:]}
            continue
        ours, alone = losses(folder), losses(work / "whole")
        worst = max(abs(a - b) / abs(b) for a, b in zip(ours, alone, strict=True))
        out[strategy] = {"ok": worst <= rtol, "worst_relative_difference": worst}
    return out


def check_stage_commands(work: Path, device: str) -> dict:
    """One step of `llmcourse sft` from the pretraining run, then one of `llmcourse dpo` from it."""
    rows = [{"instruction": "Say yes.", "input": "", "output": "yes"},
            {"instruction": "Name the court.", "input": "", "output": "all her court"}] * 8
    pairs = [{"prompt": "Say yes.", "chosen": "yes", "rejected": "no"}] * 8
    (work / "chats.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    common = ["--steps", "1", "--batch-size", "8", "--device", device, "--no-png"]
    sft = run(llmcourse("sft", "--from", str(work / "whole"), "--data", str(work / "chats.jsonl"),
                        "--out", str(work / "sft"), *common))
    out = {"sft": {"ok": sft.returncode == 0, "error": sft.stderr[-2000:]}}
    dpo = run(llmcourse("dpo", "--from", str(work / "sft"), "--pairs", str(work / "pairs.jsonl"),
                        "--out", str(work / "dpo"), *common))
    out["dpo"] = {"ok": dpo.returncode == 0, "error": dpo.stderr[-2000:]}
    return out


def check_benchmark(device: str) -> dict:
    args = [] if device == "cuda" else ["--device", device, "--model", "tiny", "--context", "64",
                                        "--batch", "2", "--steps", "2", "--no-compile"]
    done = run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), *args], timeout=240)
    if done.returncode:
        return {"ok": False, "error": done.stderr[-2000:]}
    return {"ok": True, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA GPU on this machine: nothing was measured"}))
        return 0
    gpu = args.device == "cuda"
    processes = max(1, torch.cuda.device_count()) if gpu else 2
    # the packaged corpus (the machine may be offline) is too short for the GPU preset's windows:
    # the smoke preset, long enough on a GPU for Ctrl-C to land mid-run
    steps = "400" if gpu else "40"
    train = ["train", "--preset", "smoke", "--steps", steps, "--corpus", "tiny", "--vocab-size",
             "300", "--no-png", "--device", args.device, "--batch-size", str(8 * processes)]
    precision = "bf16" if gpu else "fp32"
    train += ["--precision", precision]
    summary: dict = {"device": torch.cuda.get_device_name() if gpu else "cpu",
                     "processes": processes, "precision": precision}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        summary["resume"] = check_resume(train, work)
        rtol = 2e-2 if precision == "bf16" else 1e-4
        summary["torchrun"] = check_torchrun(train, work, processes, rtol)
        summary["stage_commands"] = check_stage_commands(work, args.device)
    summary["benchmark"] = check_benchmark(args.device)
    summary["seconds"] = round(time.perf_counter() - start)
    rows = [("resume after Ctrl-C, bit-identical", summary["resume"]["ok"])]
    rows += [(f"torchrun {s} x{processes} = 1 process", r["ok"])
             for s, r in summary["torchrun"].items()]
    rows += [(f"llmcourse {s}, one step", r["ok"]) for s, r in summary["stage_commands"].items()]
    bench = summary["benchmark"]
    mfu = bench.get("mfu")
    rows.append((f"GPT-2 benchmark (MFU {mfu:.1%})" if mfu else "benchmark", bench["ok"]))
    for name, ok in rows:
        print(f"{'PASS' if ok else ('-' if ok is None else 'FAIL'):5} {name}")
    print(json.dumps(summary))
    return 0 if all(ok is not False for _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
