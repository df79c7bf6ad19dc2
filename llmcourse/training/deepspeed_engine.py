"""DeepSpeed's ZeRO, stages 1 to 3, under the same trainer and the same command line. DeepSpeed is
an optional extra, imported only when a run asks for it:

    pip install 'llmcourse[deepspeed]'
    torchrun --nproc-per-node 2 -m llmcourse train --strategy deepspeed --deepspeed-config zero3

- **Stage 1** shards AdamW's state over the processes, **stage 2** the gradients too, **stage 3**
  the parameters as well (each layer's full weights are gathered for its forward and backward,
  as FSDP does).
- **The config.** A DeepSpeed config file (JSON) names the stage and DeepSpeed's own options; the
  course ships `zero1`, `zero2` and `zero3` (`deepspeed_configs/`). What the command line already
  says is filled in from it: the rows per process, the accumulation steps, the clipping norm and
  the precision. A file that says otherwise is refused, so a setting never lives in two places.
- **The optimizer.** The trainer hands DeepSpeed its own AdamW (decay groups included) and sets
  the schedule's learning rate every step, so a DeepSpeed run trains the model a torch run does.
  A config with an `optimizer` or `scheduler` section is refused for the same reason.
- **Checkpoints.** DeepSpeed writes its shards (`deepspeed/step-N/`, one file per process) and
  rank 0 writes `checkpoint.pt` beside them: the gathered fp32 weights (what
  `llmcourse generate` reads), the step, the generators and the curve, and which shard folder goes
  with them. Only then is the previous shard folder removed, so a crash never leaves a checkpoint
  without its shards. The shards are the run's own files: DeepSpeed reads them with pickle.

The shipped zero3 config sets `stage3_param_persistence_threshold` to 0: DeepSpeed otherwise keeps
every parameter under 100k numbers whole on every process, which for the course's small models is
all of them, and stage 3 would shard nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
import weakref
from pathlib import Path
from typing import Any

import torch

from llmcourse.model.hf_checkpoint import CheckpointError
from llmcourse.training.config import TrainConfig
from llmcourse.training.distributed import Distributed

CONFIGS = Path(__file__).parent / "deepspeed_configs"
INSTALL = "pip install 'llmcourse[deepspeed]'"
SHARDS = "deepspeed"  # the folder, inside the run folder, that holds DeepSpeed's checkpoint shards
_ENGINES: weakref.WeakSet = weakref.WeakSet()  # the engines this process made and still holds


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def import_deepspeed(device: torch.device) -> Any:
    """The deepspeed module, imported on first use."""
    if device.type == "cpu":
        # DeepSpeed otherwise probes for GPUs and warns that it fell back to the CPU
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    try:
        import deepspeed
    except ImportError as err:
        message = f"--strategy deepspeed needs DeepSpeed, an optional extra: {INSTALL}"
        raise MissingExtra(message) from err
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # its INFO lines drown the run's
    # DeepSpeed 0.19 calls a collective that torch 2.13 renamed: one warning per call, no effect
    warnings.filterwarnings("ignore", message=r".* is deprecated. Please use `torch.distributed")
    return deepspeed


def config_path(source: str | Path) -> Path:
    """A shipped config by name (zero1, zero2, zero3) or a JSON file's path."""
    shipped = sorted(p.stem for p in CONFIGS.glob("*.json"))
    path = CONFIGS / f"{source}.json" if str(source) in shipped else Path(source)
    if not path.is_file():
        raise ValueError(f"no DeepSpeed config {source!r}: name one of {shipped} or a JSON file")
    return path


def _fill(config: dict, key: str, wanted: Any, where: Path, why: str) -> None:
    if key in config and config[key] != wanted:
        raise ValueError(f"{where} sets {key}={config[key]!r}, but the command line asks for "
                         f"{wanted!r} ({why}): remove {key} from the file")
    config[key] = wanted


def deepspeed_config(source: str | Path, cfg: TrainConfig, info: Distributed, precision: str,
                     device: torch.device) -> dict[str, Any]:
    """The DeepSpeed config for this run: the file's, with the command line's settings filled in.
    Refuses a file that contradicts the command line or asks for what this machine lacks.

    precision: the trainer's resolved precision (fp32, bf16 or fp16)."""
    path = config_path(source)
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    for section in ("optimizer", "scheduler"):
        if section in config:
            raise ValueError(f"{path} has a {section!r} section, but the trainer makes AdamW and "
                             "the learning-rate schedule from the training config (--preset): "
                             "remove it")
    zero = config.setdefault("zero_optimization", {})
    if zero.get("stage", 0) not in (0, 1, 2, 3):
        raise ValueError(f"{path}: zero_optimization.stage must be 0, 1, 2 or 3, "
                         f"got {zero['stage']!r}")
    rows = info.rows(cfg.batch_size)
    batch = f"--batch-size {cfg.batch_size} over {info.world_size} processes"
    _fill(config, "train_micro_batch_size_per_gpu", rows.stop - rows.start, path, batch)
    _fill(config, "gradient_accumulation_steps", cfg.grad_accum, path, "--grad-accum")
    step = f"--batch-size {cfg.batch_size} x --grad-accum {cfg.grad_accum}"
    _fill(config, "train_batch_size", cfg.batch_size * cfg.grad_accum, path, step)
    _fill(config, "gradient_clipping", cfg.grad_clip or 0.0, path, "the preset's grad_clip")
    for kind in ("bf16", "fp16"):
        asked = bool(config.get(kind, {}).get("enabled", False))
        if kind in config and asked != (precision == kind):
            verb = "enables" if asked else "disables"
            raise ValueError(f"{path} {verb} {kind}, but the run's precision is {precision} "
                             f"(--precision): remove the {kind!r} section and use --precision")
        if precision == kind:
            config[kind] = {**config.get(kind, {}), "enabled": True}
    _check_features(config, path, precision, device)
    # the trainer always passes its own torch AdamW, which DeepSpeed calls "untested" with ZeRO
    config.setdefault("zero_allow_untested_optimizer", True)
    config.setdefault("steps_per_print", 10**9)  # the trainer reports the metrics itself
    return config


def _check_features(config: dict, path: Path, precision: str, device: torch.device) -> None:
    """Refuse, before any process starts work, what DeepSpeed cannot do on this machine."""
    deepspeed = import_deepspeed(device)
    accelerator = deepspeed.accelerator.get_accelerator()
    if precision == "fp16" and not accelerator.is_fp16_supported():
        raise ValueError(f"DeepSpeed has no fp16 training on {accelerator.device_name()}: "
                         "use --precision bf16 or fp32")
    if precision == "bf16" and not accelerator.is_bf16_supported():
        raise ValueError(f"DeepSpeed has no bf16 on {accelerator.device_name()}: "
                         "use --precision fp32")
    zero = config["zero_optimization"]
    for offload in ("offload_optimizer", "offload_param"):
        target = (zero.get(offload) or {}).get("device", "none")
        if target == "nvme":
            from deepspeed.ops.op_builder import AsyncIOBuilder

            if not AsyncIOBuilder().is_compatible(verbose=False):
                raise ValueError(f"{path} asks for {offload} to NVMe, which needs DeepSpeed's "
                                 "async_io op: it cannot be built here (libaio is missing). "
                                 "Offload to 'cpu' or not at all")
        if offload == "offload_param" and target != "none" and zero.get("stage") != 3:
            raise ValueError(f"{path}: offload_param needs zero_optimization.stage 3")


def initialize(model: torch.nn.Module, optimizer: torch.optim.Optimizer, config: dict,
               device: torch.device) -> Any:
    """The DeepSpeed engine around `model`, in the process group that init_distributed joined."""
    deepspeed = import_deepspeed(device)
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config,
                                      dist_init_required=False)
    _ENGINES.add(engine)
    return engine


def release_engines() -> None:
    """Let every DeepSpeed engine still alive release its hooks and buffers. Called before the
    process group ends: an engine still holding them when the interpreter exits, after the group
    is gone, can abort the process (seen with ZeRO-3 on gloo)."""
    for engine in list(_ENGINES):
        engine.destroy()
    _ENGINES.clear()


def full_weights(engine: Any, info: Distributed) -> dict[str, torch.Tensor]:
    """The whole model's fp32 weights on rank 0 (every process must call it; the others get {}).
    In bf16 or fp16 the module holds 16-bit copies and the optimizer the fp32 master weights, so
    they are read from the optimizer with DeepSpeed's `safe_get_full_fp32_param` (which gathers
    the shards of every ZeRO stage), never cast up from the module."""
    deepspeed = import_deepspeed(engine.device)
    master = {}
    for p in engine.module.parameters():
        full = deepspeed.utils.safe_get_full_fp32_param(p)  # None where the optimizer has none
        if full is not None and info.is_main:
            master[id(p)] = full.detach().float().cpu()
    # frozen parameters (LoRA's base weights) have no master: the module's own, gathered from
    # their shards under stage 3
    frozen = [p for p in engine.module.parameters() if not p.requires_grad]
    with deepspeed.zero.GatheredParameters(frozen, modifier_rank=None):
        if not info.is_main:
            return {}
        # keep_vars: the Parameter objects, so that tied weights (one parameter, two names) and
        # buffers are told apart
        held = engine.module.state_dict(keep_vars=True)
        return {name: master[id(v)] if id(v) in master else v.detach().float().cpu().clone()
                for name, v in held.items()}


def save_shards(engine: Any, run_dir: Path, step: int) -> dict[str, Any]:
    """DeepSpeed's sharded checkpoint for `step` (every process writes its own file); returns what
    checkpoint.pt must record to find it again."""
    tag = f"step-{step}"
    engine.save_checkpoint(str(run_dir / SHARDS), tag=tag, save_latest=False)
    return {"tag": tag, "world_size": engine.world_size, "stage": engine.zero_optimization_stage()}


def remove_old_shards(run_dir: Path, keep: str) -> None:
    """Rank 0, once checkpoint.pt names `keep`: the shard folders no checkpoint points at."""
    for folder in (run_dir / SHARDS).iterdir():
        if folder.is_dir() and folder.name != keep:
            shutil.rmtree(folder)


def load_shards(engine: Any, run_dir: Path, saved: dict[str, Any]) -> None:
    """Restore the weights and AdamW's shards that `saved` (from checkpoint.pt) names."""
    stage = engine.zero_optimization_stage()
    if saved["world_size"] != engine.world_size or saved["stage"] != stage:
        raise CheckpointError(f"{run_dir} was trained with ZeRO stage {saved['stage']} on "
                              f"{saved['world_size']} processes; its optimizer shards resume only "
                              f"on the same (now: stage {stage}, {engine.world_size} processes)")
    loaded, _ = engine.load_checkpoint(str(run_dir / SHARDS), tag=saved["tag"])
    if loaded is None:
        raise CheckpointError(f"{run_dir / SHARDS / saved['tag']} is missing or incomplete")
