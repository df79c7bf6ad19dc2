"""Data parallelism on a real engine: `llmcourse train` under torchrun with 2 processes (gloo on the
CPU), against the same command in one process with the same global batch.

In fp32 the two are the same computation, cut differently: each process multiplies half the batch,
and the all-reduce adds the halves' gradients in another order than one process's matrix product
does. So they agree to float32 rounding, not bit for bit, and the tolerances are stated from that:
- losses within 1e-5 relative over 6 steps;
- weights within 1e-4 absolute after 6 AdamW steps at lr 3e-3 (measured: about 1.3e-5). AdamW
  divides each update by the root of the gradient's second moment, so where a gradient is near
  zero a rounding difference moves the update by a visible fraction of the learning rate.
Runs of the same strategy, interrupted and resumed or not, are bit-identical.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.model.config import get_preset
from llmcourse.model.sizing import sharded_memory
from llmcourse.training.checkpoint import load_checkpoint

HERE = Path(__file__).resolve().parent
TRAIN = ["train", "--preset", "smoke", "--corpus", "tiny", "--vocab-size", "300",
         "--precision", "fp32", "--steps", "6"]
# one thread per process: two processes share the 2 cores, and both sides then sum in the same
# thread layout
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
LOSS_RTOL, WEIGHT_ATOL = 1e-5, 1e-4


def torchrun(*args: str, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


def single(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmcourse", *args], capture_output=True,
                          text=True, timeout=240, env=ENV)


def losses(run: Path) -> list[float]:
    return [m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if m["kind"] == "train"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Single-process runs: {grad_accum: run folder}."""
    runs = {}
    for accum in (1, 2):
        out = tmp_path_factory.mktemp(f"single{accum}") / "run"
        done = single(*TRAIN, "--grad-accum", str(accum), "--out", str(out))
        assert done.returncode == 0, done.stderr
        runs[accum] = out
    return runs


def strategy_arguments(strategy: str) -> list[str]:
    """'deepspeed:zero3' -> the DeepSpeed strategy with the course's ZeRO-3 config."""
    name, _, config = strategy.partition(":")
    return ["--strategy", name] + (["--deepspeed-config", config] if config else [])


@pytest.mark.parametrize("strategy, accum", [("ddp", 1), ("ddp", 2), ("zero1", 2), ("fsdp", 2),
                                             ("deepspeed:zero1", 2), ("deepspeed:zero2", 1),
                                             ("deepspeed:zero3", 2)])
def test_two_processes_train_the_single_process_model(strategy, accum, reference, tmp_path):
    out = tmp_path / "run"
    done = torchrun("-m", "llmcourse", *TRAIN, "--grad-accum", str(accum),
                    *strategy_arguments(strategy), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 alone prints
    assert "2 processes" in done.stderr and done.stderr.count("training ") == 1
    ours, theirs = losses(out), losses(reference[accum])
    metrics = map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
    train = [m for m in metrics if m["kind"] == "train"]
    # each rank's half
    assert all(m["loss"] == pytest.approx(sum(m["rank_losses"]) / 2, rel=1e-6) for m in train)
    assert len(ours) == 6 and ours == pytest.approx(theirs, rel=LOSS_RTOL)
    got = load_checkpoint(out / "checkpoint.pt")
    want = load_checkpoint(reference[accum] / "checkpoint.pt")
    assert got["model"].keys() == want["model"].keys()
    worst = max((got["model"][k] - want["model"][k]).abs().max().item() for k in want["model"])
    assert worst < WEIGHT_ATOL, worst
    # AdamW's state is in DeepSpeed's shards, which only it reads
    if strategy.startswith("deepspeed"):
        stage = int(strategy[-1])
        assert got["deepspeed"] == {"tag": "step-6", "world_size": 2, "stage": stage}
        assert [p.name for p in (out / "deepspeed").iterdir() if p.is_dir()] == ["step-6"]
        refused = single("train", "--out", str(out), "--resume")
        assert refused.returncode == 2
        hint = "resume it with torchrun --nproc-per-node 2 and --strategy deepspeed"
        assert hint in refused.stderr
        return
    # AdamW's state: the single-process layout
    moments = got["optimizer"]["state"], want["optimizer"]["state"]
    assert moments[0].keys() == moments[1].keys()
    for i in moments[1]:
        torch.testing.assert_close(moments[0][i]["exp_avg"], moments[1][i]["exp_avg"],
                                   rtol=1e-3, atol=1e-7)
    # the run resumes in one process: its checkpoint is the single-process format
    resumed = single("train", "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]


@pytest.mark.parametrize("strategy", ["ddp", "zero1", "fsdp", "deepspeed:zero2", "deepspeed:zero3"])
def test_a_resumed_distributed_run_is_bit_identical(strategy, tmp_path):
    done = torchrun(str(HERE / "distributed_worker.py"), "resume", strategy, str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    whole = torch.load(tmp_path / "whole.pt", weights_only=True)
    resumed = load_checkpoint(tmp_path / "run" / "checkpoint.pt")

    def strip(h):  # the timings differ between any two runs
        return [{k: v for k, v in m.items() if k != "tokens_per_s"} for m in h]

    assert resumed["step"] == 6 and strip(resumed["history"]) == strip(whole["history"])
    assert all(torch.equal(resumed["model"][k], whole["model"][k]) for k in whole["model"])
    # step 3's shards went once step 6's checkpoint named its own
    if strategy.startswith("deepspeed"):
        tags = [p.name for p in (tmp_path / "run" / "deepspeed").iterdir() if p.is_dir()]
        assert tags == ["step-6"]


def test_two_processes_weigh_masked_answers_like_one(tmp_path):
    """Rows whose answers differ in length, split over 2 processes and 2 micro-batches: the loss
    and the gradient of one process with the whole batch (to float32 rounding)."""
    done = torchrun(str(HERE / "distributed_worker.py"), "masked", "ddp", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "masked.json").read_text())
    both, alone = result["losses"]
    assert both == pytest.approx(alone, rel=LOSS_RTOL)
    assert result["gradient_difference"] < 1e-5 * result["largest_gradient"]


def test_deepspeed_exports_its_fp32_master_weights(tmp_path):
    """In bf16 the module holds 16-bit weights and the optimizer the fp32 masters: the run's
    checkpoint.pt must hold the masters, as DeepSpeed's own consolidation of its shards
    (zero_to_fp32) reads them, and not the 16-bit weights cast up."""
    pytest.importorskip("deepspeed")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    out = tmp_path / "run"
    done = torchrun("-m", "llmcourse", *TRAIN[:-4], "--precision", "bf16", "--steps", "3",
                    "--strategy", "deepspeed", "--deepspeed-config", "zero3", "--no-png",
                    "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    saved = load_checkpoint(out / "checkpoint.pt")
    theirs = get_fp32_state_dict_from_zero_checkpoint(str(out / "deepspeed"),
                                                      tag=saved["deepspeed"]["tag"])
    ours = saved["model"]
    for name, weight in theirs.items():
        assert torch.equal(ours[name], weight.float()), name
    assert not all(torch.equal(w, w.bfloat16().float()) for w in ours.values())


def test_sharded_optimizer_equals_adamw_and_torchs_zero(tmp_path):
    """ZeRO-1 written out: the same weights as plain AdamW and as torch's ZeroRedundancyOptimizer,
    with each process holding the state of only its share of the parameters, and a consolidated
    state dict in AdamW's layout."""
    done = torchrun(str(HERE / "distributed_worker.py"), "zero", "ddp", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "zero.json").read_text())
    assert result["sharded_equals_plain"] and result["sharded_equals_torch"]
    assert result["torch_equals_plain"]
    assert sum(result["states_per_rank"]) == result["parameters"]
    assert 0 < min(result["states_per_rank"])
    assert result["consolidated_keys"] == list(range(result["parameters"]))
    assert result["consolidated_groups"] == result["reference_groups"]
    assert result["consolidated_settings"] == result["reference_settings"]
    # the memory arithmetic of the scaling chapter: each of 2 processes holds about half of AdamW's
    # 8 bytes/parameter
    cfg = get_preset("tiny", n_layer=2, vocab_size=256, context_length=32)
    expected = sharded_memory(cfg, 2, "zero1", 1).optimizer
    assert sum(result["bytes_per_rank"]) == 2 * expected
    assert max(result["bytes_per_rank"]) == pytest.approx(expected, rel=0.2)


def test_deepspeed_shards_what_the_calculator_says(tmp_path):
    """Each process's share under DeepSpeed's ZeRO stages, against the scaling chapter's arithmetic:
    stages 1 and 2 split AdamW's moments over the 2 processes, stage 3 the weights as well (the
    shards are padded to equal lengths, hence the 1 % slack)."""
    pytest.importorskip("deepspeed")
    done = torchrun(str(HERE / "distributed_worker.py"), "shards", "deepspeed:zero1", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    held = json.loads((tmp_path / "shards.json").read_text())
    cfg = get_preset("tiny", n_layer=2, vocab_size=256, context_length=32)
    full = sharded_memory(cfg, 1, "ddp", 1)
    for stage, ranks in held.items():
        for rank in ranks:
            assert rank["optimizer"] == pytest.approx(full.optimizer / 2, rel=0.01), stage
            weights = full.weights / 2 if stage == "zero3" else full.weights
            assert rank["weights"] == pytest.approx(weights, rel=0.01), stage


def test_a_failing_process_brings_the_run_down_with_its_error(tmp_path):
    done = torchrun(str(HERE / "distributed_worker.py"), "fail", "ddp", str(tmp_path), timeout=180)
    assert done.returncode != 0
    assert "rank 1 failed on purpose at step 2" in done.stderr


def test_a_batch_the_processes_cannot_share_is_refused(tmp_path):
    done = torchrun("-m", "llmcourse", *TRAIN, "--batch-size", "3", "--out", str(tmp_path / "run"))
    assert done.returncode != 0
    assert "error: a batch of 3 sequences does not split evenly over 2 processes" in done.stderr
