"""`llmcourse train` and `llmcourse generate` as a user runs them: a real subprocess, a run folder,
a resume."""
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from llmcourse.tokenizer import END_OF_TEXT, Tokenizer, save_tokenizer
from llmcourse.training import load_checkpoint

TRAIN = ["train", "--preset", "smoke", "--corpus", "tiny", "--vocab-size", "300",
         "--precision", "fp32"]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "llmcourse", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "TQDM_DISABLE": "1"})


def test_train_resume_and_generate(tmp_path):
    run = tmp_path / "run"
    first = cli(*TRAIN, "--steps", "6", "--out", str(run))
    assert first.returncode == 0, first.stderr
    assert "validation loss" in first.stdout and "bits/byte" in first.stdout
    assert {p.name for p in run.iterdir()} >= {"checkpoint.pt", "metrics.jsonl", "run.json",
                                                "tokenizer.json", "curves.html", "curves.png"}
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if m["kind"] == "train"] == list(range(1, 7))

    again = cli(*TRAIN, "--steps", "6", "--out", str(run))
    # never overwrites a run by accident
    assert again.returncode != 0 and "--resume" in again.stderr

    # a finished run resumes to its end: nothing to do
    resumed = cli("train", "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6

    sample = cli("generate", str(run), "--prompt", "The", "--max-new-tokens", "20", "--seed", "0")
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("The") and len(sample.stdout.strip()) > 3


def test_minutes_budget_measures_steps_first(tmp_path):
    # 3 seconds of training
    result = cli(*TRAIN, "--minutes", "0.05", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["train_config"]["max_steps"]
    assert 1 <= steps < 10_000


def test_tokens_budget_sets_the_steps(tmp_path):
    # 3 steps of 4 x 32 tokens
    result = cli(*TRAIN, "--tokens", "384", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_config"]["max_steps"] == 3


@pytest.mark.parametrize("args, message", [
    (["train", "--steps", "1", "--tokens", "5"], "not allowed with argument"),
    (["train", "--preset", "huge"], "invalid choice: 'huge'"),
    (["train", "--steps", "x"], "invalid int value"),
    (["generate"], "the following arguments are required: RUN_DIR"),
])
def test_bad_arguments_get_one_line(args, message):
    result = cli(*args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_every_option():
    text = cli("train", "--help").stdout
    options = ("--preset", "--model", "--corpus", "--steps", "--tokens", "--minutes", "--out",
               "--resume")
    for option in options:
        assert option in text


def test_resume_continues_the_same_run(tmp_path):
    """--resume keeps the run's tokenizer and settings, refuses a flag that would change them,
    lets a larger budget extend it, and leaves one metrics line per step after a crash."""
    run = tmp_path / "run"
    assert cli(*TRAIN, "--steps", "4", "--out", str(run)).returncode == 0
    refused = cli(*TRAIN, "--batch-size", "8", "--out", str(run), "--resume")
    assert refused.returncode == 2
    assert "--batch-size 8 differs from the run's 4" in refused.stderr
    # the run's own tokenizer, not one trained again: plant another of the same size
    numbers = " ".join(f"{i} and {7 * i}" for i in range(3000))
    other = Tokenizer.train(numbers, 300, special_tokens=[END_OF_TEXT])
    save_tokenizer(other, run / "tokenizer.json")
    planted = (run / "tokenizer.json").read_text()
    # a crash after the checkpoint left lines for steps 5 and 6 that the resume redoes
    metrics = run / "metrics.jsonl"
    lost = [{"kind": "train", "step": step, "loss": 9.0} for step in (5, 6)]
    metrics.write_text(metrics.read_text() + "".join(json.dumps(m) + "\n" for m in lost))
    longer = cli(*TRAIN, "--steps", "6", "--out", str(run), "--resume")
    assert longer.returncode == 0, longer.stderr
    assert "the budget grows from 4 to 6 steps" in longer.stderr
    assert (run / "tokenizer.json").read_text() == planted
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [m["step"] for m in lines if m["kind"] == "train"] == list(range(1, 7))
    assert all(m.get("loss") != 9.0 for m in lines)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 6
