"""Training: fit / evaluate / predict, History, callbacks, checkpoints that resume bit for bit."""

from .callbacks import BestCheckpoint, Callback, Checkpoint, DivergenceWatch, EarlyStopping
from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .history import History
from .loop import EvalResult, Run, TrainingDiverged, evaluate, fit, predict, resume

__all__ = [
    "BestCheckpoint", "Callback", "Checkpoint", "DivergenceWatch", "EarlyStopping", "EvalResult", "History", "Run",
    "TrainingDiverged", "evaluate", "fit", "load_checkpoint", "predict", "read_checkpoint", "resume", "save_checkpoint",
]
