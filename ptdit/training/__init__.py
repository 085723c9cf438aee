"""Training: config, batch order, EMA, checkpoints, distributed wrapping, logs and the loop (see ptdit.train)."""

from .checkpoint import export_model, init_from, latest_checkpoint
from .config import TrainConfig
from .loop import Trainer, TrainingDiverged, TrainResult, lr_at, train

__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainResult",
    "TrainingDiverged",
    "train",
    "lr_at",
    "export_model",
    "init_from",
    "latest_checkpoint",
]
