"""DeepSpeed's config as the trainer reads it, the errors a learner meets, and the extra staying
optional. (Runs with real processes are in test_distributed.py.)"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from llmcourse.training import get_train_preset
from llmcourse.training.deepspeed_engine import INSTALL, config_path, deepspeed_config
from llmcourse.training.distributed import Distributed

pytest.importorskip("deepspeed")

CPU = torch.device("cpu")
CFG = get_train_preset("smoke", batch_size=8, grad_accum=2)
TWO = Distributed(0, 2, 0, "deepspeed", "zero3")


def write(tmp_path, config: dict | str) -> str:
    path = tmp_path / "ds.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return str(path)


@pytest.mark.parametrize("name", ["zero1", "zero2", "zero3"])
def test_a_shipped_config_gets_the_command_lines_settings(name):
    config = deepspeed_config(name, CFG, TWO, "fp32", CPU)
    assert config["zero_optimization"]["stage"] == int(name[-1])
    # DeepSpeed's own check: train_batch_size = micro-batch x accumulation x processes
    assert (
        config["train_micro_batch_size_per_gpu"] == 4 and config["gradient_accumulation_steps"] == 2
    )
    assert config["train_batch_size"] == 4 * 2 * 2 and config["gradient_clipping"] == CFG.grad_clip
    assert "bf16" not in config and "fp16" not in config
    assert deepspeed_config(name, CFG, TWO, "bf16", CPU)["bf16"] == {"enabled": True}


@pytest.mark.parametrize(
    "config, message",
    [
        (
            {"zero_optimization": {"stage": 4}},
            "zero_optimization.stage must be 0, 1, 2 or 3, got 4",
        ),
        ({"optimizer": {"type": "Adam"}}, "has a 'optimizer' section, but the trainer makes AdamW"),
        (
            {"train_batch_size": 64},
            "sets train_batch_size=64, but the command line asks for 16 "
            "(--batch-size 8 x --grad-accum 2)",
        ),
        (
            {"gradient_accumulation_steps": 4},
            "sets gradient_accumulation_steps=4, but the command line asks for 2",
        ),
        ({"bf16": {"enabled": True}}, "enables bf16, but the run's precision is fp32"),
        (
            {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme"}}},
            "offload_optimizer to NVMe, which needs DeepSpeed's async_io op",
        ),
        (
            {"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}},
            "offload_param needs zero_optimization.stage 3",
        ),
        ("{'stage': 3}", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, got list"),
    ],
)
def test_a_config_that_asks_for_what_the_run_cannot_do_is_refused(config, message, tmp_path):
    with pytest.raises(ValueError) as err:
        deepspeed_config(write(tmp_path, config), CFG, TWO, "fp32", CPU)
    assert message in str(err.value)


def test_fp16_on_the_cpu_is_refused_before_deepspeed_fails_later():
    with pytest.raises(
        ValueError, match="DeepSpeed has no fp16 training on cpu: use --precision bf16"
    ):
        deepspeed_config("zero2", CFG, TWO, "fp16", CPU)


def test_an_unknown_config_names_the_shipped_ones():
    with pytest.raises(
        ValueError, match=r"no DeepSpeed config 'zero4': name one of \['zero1', 'zero2'"
    ):
        config_path("zero4")


def test_more_processes_than_rows_is_refused():
    with pytest.raises(ValueError, match="4 processes but 2 sequences per micro-batch"):
        Distributed(0, 4, 0).rows(2)
    with pytest.raises(ValueError, match="goes with --deepspeed-config"):
        Distributed(0, 2, 0, "deepspeed")


def python(*args: str, hidden: Path | None = None) -> subprocess.CompletedProcess:
    """`python ARGS` in a fresh process; hidden: a folder in which to fake a missing DeepSpeed, as
    if the extra were not installed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    if hidden is not None:
        fake = hidden / "deepspeed"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('No module named deepspeed')\n")
        env["PYTHONPATH"] = str(hidden)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          timeout=180)


def test_nothing_else_imports_deepspeed(tmp_path):
    code = ("import sys, llmcourse.cli, llmcourse.training.command, llmcourse.training.trainer, "
            "llmcourse.training.course_model, llmcourse.grading.grader; "
            "print('deepspeed' in sys.modules)")
    done = python("-c", code, hidden=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_without_the_extra_the_error_names_it(tmp_path):
    code = ("import torch\nfrom llmcourse.training.deepspeed_engine import import_deepspeed\n"
            "try:\n    import_deepspeed(torch.device('cpu'))\n"
            "except ImportError as err:\n    print(err)\n")
    done = python("-c", code, hidden=tmp_path)
    expected = f"--strategy deepspeed needs DeepSpeed, an optional extra: {INSTALL}"
    assert done.stdout.strip() == expected


TRAIN = "-m llmcourse train --preset smoke --corpus tiny --vocab-size 300".split()
DEEPSPEED = "--strategy deepspeed --deepspeed-config zero2".split()


def test_deepspeed_outside_torchrun_says_how_to_launch_it(tmp_path):
    done = python(*TRAIN, *DEEPSPEED, "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert "error: --strategy deepspeed runs under torchrun" in done.stderr


def test_a_launch_without_the_extra_ends_with_one_line_naming_it(tmp_path):
    torchrun = "-m torch.distributed.run --standalone --nproc-per-node=2".split()
    done = python(*torchrun, *TRAIN, *DEEPSPEED, "--out", str(tmp_path / "run"), hidden=tmp_path)
    assert done.returncode != 0
    missing = f"error: --strategy deepspeed needs DeepSpeed, an optional extra: {INSTALL}"
    assert missing in done.stderr
    assert "preparing" not in done.stderr  # refused before any work
    assert "[rank0]: Traceback" not in done.stderr and "[rank1]: Traceback" not in done.stderr
