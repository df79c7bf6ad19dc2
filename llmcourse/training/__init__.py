"""Pretraining: a training config with presets, learning-rate schedules, AdamW with decay groups,
atomic checkpoints with exact resume, and the trainer that ties them together. Core layer: it
reports metrics to callbacks and never imports the views."""
from llmcourse.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from llmcourse.training.config import TRAIN_PRESETS, TrainConfig, get_train_preset
from llmcourse.training.optim import make_optimizer, param_groups
from llmcourse.training.schedule import lr_at
from llmcourse.training.trainer import Trainer, TrainingDiverged

__all__ = ["CheckpointError", "TRAIN_PRESETS", "TrainConfig", "Trainer", "TrainingDiverged",
           "get_train_preset", "load_checkpoint", "lr_at", "make_optimizer", "param_groups",
           "save_checkpoint"]
