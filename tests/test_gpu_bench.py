"""The GPU benchmark: it refuses to guess without a GPU, and its measuring path runs (on the CPU,
on a tiny model, where the GPU's peak and so the MFU are unknown)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.sizing import flops_per_token

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bench.py"


def bench(*args: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the benchmark runs")
def test_without_a_gpu_nothing_is_measured():
    result = bench()
    assert result["skipped"] == "no CUDA GPU on this machine"
    # nanoGPT's published step: 12 x 1,024 tokens in 135 ms on an A100
    assert result["nanogpt_tokens_per_s"] == pytest.approx(12 * 1024 / 0.135)
    per_token = flops_per_token(get_preset("gpt2", vocab_size=50304), 1024)
    assert result["nanogpt_mfu"] == pytest.approx(12 * 1024 / 0.135 * per_token / 312e12)


def test_the_measuring_path_runs_on_the_cpu():
    result = bench("--device", "cpu", "--model", "tiny", "--context", "32", "--batch", "2",
                   "--steps", "2", "--no-compile")
    assert result["device"] == "cpu" and result["precision"] == "fp32"
    assert result["tokens_per_s"] > 0 and result["mfu"] is None
    assert result["ms_per_step"] == pytest.approx(2 * 32 / result["tokens_per_s"] * 1e3)
