"""Training checkpoints that survive a crash: written whole or not at all, loaded without running
code.

A checkpoint is one file holding everything a run needs to continue exactly where it stopped: the
model, the optimizer's moments, the grad scaler, every random generator, the step (which fixes the
learning rate) and the data sampler's position. It is written to a temporary file in the same
folder, flushed to disk, then renamed over the old one: a rename within a folder is atomic, so a
process killed mid-write leaves the previous checkpoint whole. Loading uses
`torch.load(weights_only=True)`, which unpickles tensors and plain containers only, so a checkpoint
from elsewhere cannot run code.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from llmcourse.model.hf_checkpoint import CheckpointError

FORMAT = "llmcourse-train-1"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (tensors, numbers, strings, lists and dicts) atomically to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state saved by `save_checkpoint`, or a CheckpointError that says what is wrong with the
    file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - damaged zips and unsafe pickles raise varied errors
        first_line = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{path} is not a readable training checkpoint "
                              f"({type(err).__name__}: {first_line})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a training checkpoint of this format ({FORMAT})")
    return state


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """'field: saved -> current' for every field that differs between two config dicts.

    >>> config_differences({"lr": 0.001, "seed": 0}, {"lr": 0.003, "seed": 0})
    ['lr: 0.001 -> 0.003']
    """
    keys = sorted(saved.keys() | current.keys())
    return [f"{k}: {saved.get(k, '(absent)')!r} -> {current.get(k, '(absent)')!r}"
            for k in keys if saved.get(k) != current.get(k)]


def plain_config(cfg: Any) -> dict[str, Any] | None:
    """A config dataclass as a dict of plain values (what weights_only checkpoints may hold)."""
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None


def refuse_other_run(path: Path, state: dict[str, Any], train_config: dict[str, Any],
                     model_config: dict[str, Any] | None) -> None:
    """Refuse to resume the checkpoint at `path` (its `state`) with another training or model
    config. A larger budget (max_steps) may continue a run: its schedule then stretches."""
    saved_steps = state["train_config"]["max_steps"]
    if train_config["max_steps"] < saved_steps:
        raise CheckpointError(f"{path} was a run of {saved_steps} steps: a resume may grow its "
                              f"budget, not cut it to {train_config['max_steps']} (stop early "
                              "with fit(stop_after=...) instead)")
    saved = {**state["train_config"], "max_steps": train_config["max_steps"]}
    changed = config_differences(saved, train_config)
    model_changes = config_differences(state["model_config"] or {}, model_config or {})
    changed += [f"model.{d}" for d in model_changes]
    if changed:
        fields = "\n  ".join(changed)
        raise CheckpointError(f"{path} was written with another config; to resume, use the saved "
                              f"one. Fields that differ (saved -> now):\n  {fields}")
