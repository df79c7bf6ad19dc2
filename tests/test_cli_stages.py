"""`llmcourse sft` and `llmcourse dpo` as a user runs them: real subprocesses on a pretraining run
folder, resumed after Ctrl-C, refusing bad records by line, read back by `chat`."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT

from llmcourse.training import load_checkpoint

ENV = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
ROWS = [{"instruction": "Say yes.", "input": "", "output": "yes"},
        {"instruction": "Say it all.", "input": "",
         "output": "the king is dead long live the queen and all her court"}] * 6
PAIRS = [{"prompt": "Say yes.", "chosen": "yes", "rejected": "no"},
         {"prompt": "Say it all.", "chosen": "the king", "rejected": "the queen"}] * 4


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmcourse", *args]


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, cwd=ROOT, env=ENV,
                          input=stdin, timeout=300)


def jsonl(path, records) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A pretraining run folder, the --from of every fine-tuning run here."""
    folder = tmp_path_factory.mktemp("stages")
    done = cli("train", "--preset", "smoke", "--corpus", "tiny", "--vocab-size", "300",
               "--precision", "fp32", "--steps", "4", "--no-png", "--out", str(folder / "base"))
    assert done.returncode == 0, done.stderr
    return folder


def test_sft_accumulation_matches_one_batch(base):
    """--grad-accum 2 --batch-size 4 against --grad-accum 1 --batch-size 8, one step on answers of
    1 and 12 words: the same loss and gradient (AdamW's first moment over 0.1). The weights agree
    to 1e-4, not closer: AdamW's first step moves a weight by about the learning rate even where
    its gradient is rounding noise (attention's key biases), so rounding shows there."""
    data = jsonl(base / "chats.jsonl", ROWS)
    runs = {}
    for batch, accum in (("8", "1"), ("4", "2")):
        out = base / f"accum{accum}"
        done = cli("sft", "--from", str(base / "base"), "--data", data, "--out", str(out),
                   "--steps", "1", "--batch-size", batch, "--grad-accum", accum,
                   "--precision", "fp32", "--no-png")
        assert done.returncode == 0, done.stderr
        runs[accum] = load_checkpoint(out / "checkpoint.pt")
    one, two = runs["1"], runs["2"]
    assert two["history"][0]["loss"] == pytest.approx(one["history"][0]["loss"], rel=1e-6)
    for i, moments in one["optimizer"]["state"].items():
        gradient = two["optimizer"]["state"][i]["exp_avg"] / 0.1
        torch.testing.assert_close(gradient, moments["exp_avg"] / 0.1, atol=1e-6, rtol=0)
    for name, weight in one["model"].items():
        torch.testing.assert_close(two["model"][name], weight, atol=1e-4, rtol=0)


def test_sft_resumes_exactly_after_ctrl_c_and_chats(base):
    data = jsonl(base / "chats.jsonl", ROWS)
    args = ["sft", "--from", str(base / "base"), "--data", data, "--steps", "150",
            "--batch-size", "4", "--precision", "fp32", "--no-png", "--lora", "4"]
    whole = cli(*args, "--out", str(base / "whole"))
    assert whole.returncode == 0, whole.stderr
    stopped = base / "stopped"
    process = subprocess.Popen(command(*args, "--out", str(stopped)), cwd=ROOT, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = stopped / "metrics.jsonl"
    while process.poll() is None and (not metrics.exists() or
                                      len(metrics.read_text().splitlines()) < 5):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=300)
    assert process.returncode == 130, error  # stopped by Ctrl-C, with a checkpoint
    assert load_checkpoint(stopped / "checkpoint.pt")["step"] < 150
    resumed = cli("sft", "--out", str(stopped), "--resume", "--no-png")
    assert resumed.returncode == 0, resumed.stderr
    want, got = (load_checkpoint(f / "checkpoint.pt")["model"] for f in (base / "whole", stopped))
    assert all(torch.equal(got[k], want[k]) for k in want)
    # chat reads the LoRA run back, merged
    reply = cli("chat", str(stopped), "--max-new-tokens", "4", stdin="Say yes.\n")
    assert reply.returncode == 0, reply.stderr
    assert reply.stdout.startswith("> Say yes.")


def test_dpo_trains_from_an_sft_run_and_refuses_bad_records(base):
    sft = base / "sft"
    chats = jsonl(base / "chats.jsonl", ROWS)
    assert cli("sft", "--from", str(base / "base"), "--data", chats, "--out", str(sft),
               "--steps", "3", "--batch-size", "4", "--no-png").returncode == 0
    pairs = jsonl(base / "pairs.jsonl", PAIRS)
    done = cli("dpo", "--from", str(sft), "--pairs", pairs, "--out", str(base / "dpo"),
               "--steps", "3", "--batch-size", "4", "--precision", "fp32", "--no-png")
    assert done.returncode == 0, done.stderr
    history = load_checkpoint(base / "dpo" / "checkpoint.pt")["history"]
    assert history[0]["loss"] == pytest.approx(0.6931472, abs=1e-5)  # the policy starts at ln 2
    reply = cli("chat", str(base / "dpo"), "--max-new-tokens", "4", stdin="Say yes.\n")
    assert reply.returncode == 0, reply.stderr
    bad = jsonl(base / "bad.jsonl", [*PAIRS[:2], {"prompt": "Say yes.", "chosen": "yes"}])
    refused = cli("dpo", "--from", str(sft), "--pairs", bad, "--out", str(base / "bad"))
    assert refused.returncode == 2
    assert "bad.jsonl, line 3: missing rejected" in refused.stderr
    from_base = cli("dpo", "--from", str(base / "base"), "--pairs", pairs, "--out",
                    str(base / "plain"))
    assert from_base.returncode == 2 and "without the chat tokens" in from_base.stderr


def torchrun(*args: str) -> subprocess.CompletedProcess:
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "llmcourse", *args]
    return subprocess.run(run, capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)


def test_stages_run_under_torchrun_sharded(base):
    """dpo with fsdp (the objective wraps the model, whose blocks are sharded), and sft with LoRA
    under DeepSpeed ZeRO-3 (frozen base weights have no fp32 master to export)."""
    chats = jsonl(base / "chats.jsonl", ROWS)
    sft = base / "sft-for-dpo"
    assert cli("sft", "--from", str(base / "base"), "--data", chats, "--out", str(sft),
               "--steps", "2", "--batch-size", "4", "--no-png").returncode == 0
    pairs = jsonl(base / "pairs.jsonl", PAIRS)
    done = torchrun("dpo", "--from", str(sft), "--pairs", pairs, "--out", str(base / "dpo-fsdp"),
                    "--steps", "2", "--batch-size", "4", "--precision", "fp32", "--no-png",
                    "--strategy", "fsdp")
    assert done.returncode == 0, done.stderr[-3000:]
    assert cli("chat", str(base / "dpo-fsdp"), "--max-new-tokens", "2",
               stdin="Say yes.\n").returncode == 0
    pytest.importorskip("deepspeed")
    done = torchrun("sft", "--from", str(base / "base"), "--data", chats, "--lora", "4",
                    "--out", str(base / "sft-ds"), "--steps", "2", "--batch-size", "4",
                    "--precision", "fp32", "--no-png", "--strategy", "deepspeed",
                    "--deepspeed-config", "zero3")
    assert done.returncode == 0, done.stderr[-3000:]
    assert cli("chat", str(base / "sft-ds"), "--max-new-tokens", "2",
               stdin="Say yes.\n").returncode == 0


def test_a_run_resumes_only_with_its_own_command(base):
    refused = cli("sft", "--out", str(base / "base"), "--resume")
    assert refused.returncode != 0
    assert "is a run of `llmcourse train`" in refused.stderr


def test_a_resume_refuses_changed_inputs_and_reads_paths_from_anywhere(base):
    """The data file named by a relative path, then by its absolute one: the same run. The file
    changed: refused, naming it. `--precision auto` is the default, not a change."""
    data = base / "inputs.jsonl"
    jsonl(data, ROWS)
    out = str(base / "inputs")
    started = cli("sft", "--from", str(base / "base"), "--data", os.path.relpath(data, ROOT),
                  "--out", out, "--steps", "1", "--batch-size", "2", "--no-png")
    assert started.returncode == 0, started.stderr
    again = cli("sft", "--out", out, "--resume", "--data", str(data), "--precision", "auto",
                "--steps", "2", "--no-png")
    assert again.returncode == 0, again.stderr
    jsonl(data, ROWS[::-1])
    refused = cli("sft", "--out", out, "--resume", "--steps", "3", "--no-png")
    assert refused.returncode == 2
    assert f"{data} (--data) has changed" in refused.stderr
    data.unlink()
    gone = cli("sft", "--out", out, "--resume", "--steps", "3", "--no-png")
    assert gone.returncode == 2 and f"{data} (--data) is missing" in gone.stderr
    missing = cli("sft", "--from", str(base / "base"), "--data", str(base / "none.jsonl"),
                  "--out", str(base / "missing"), "--no-png")
    assert missing.returncode == 2 and "none.jsonl" in missing.stderr
    assert "Traceback" not in missing.stderr

