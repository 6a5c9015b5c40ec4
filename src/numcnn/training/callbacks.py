"""Callbacks for :func:`numcnn.training.fit`: full checkpoints for resume, best-model weights, early stopping."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ..serialization import save
from .checkpoint import save_checkpoint


class Callback:
    """Hooks called by ``fit``. ``run`` is the :class:`~numcnn.training.loop.Run` being trained (model, optimizer,
    scheduler, history, epoch, ``stop`` flag)."""

    def on_train_begin(self, run) -> None:
        pass

    def on_epoch_begin(self, run) -> None:
        pass

    def on_epoch_end(self, run, record: dict) -> None:
        pass

    def on_train_end(self, run) -> None:
        pass


class Checkpoint(Callback):
    """Write a full checkpoint (model, optimizer, scheduler, RNG states, epoch, history) every ``every`` epochs,
    replacing the previous one atomically; :func:`numcnn.training.resume` continues from it.

    An epoch whose validation loss is NaN/Inf is not written: the previous checkpoint stays, the last one whose
    validation loss was finite (``saved_epoch``; ``skipped`` lists the epochs not written for that reason)."""

    def __init__(self, folder, every: int = 1, extra: dict | None = None):
        self.folder, self.every, self.extra = Path(folder), every, extra
        self.saved_epoch: int | None = None
        self.skipped: list[int] = []

    def on_epoch_end(self, run, record: dict) -> None:
        val = record.get("val_loss")
        if val is not None and not math.isfinite(val):
            self.skipped.append(run.epoch)
            return
        if run.epoch % self.every == 0 or run.stop or run.epoch == run.epochs:
            self.saved_epoch = run.epoch
            save_checkpoint(self.folder, model=run.model, optimizer=run.optimizer, scheduler=run.scheduler,
                            epoch=run.epoch, history=run.history, train_loader=run.train_loader, extra=self.extra)


def _improved(value, best, mode: str, min_delta: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str | None):
        from .history import FIELDS

        if monitor not in FIELDS:
            raise ValueError(f"{type(self).__name__}: cannot monitor {monitor!r}; choose one of {', '.join(FIELDS)}")
        self.monitor = monitor
        self.mode = mode or ("min" if monitor.endswith("loss") else "max")
        if self.mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__}: mode must be 'min' or 'max', got {mode!r}")
        self.best = None
        self.best_epoch = None


class BestCheckpoint(_Monitor):
    """Save the model's weights (safetensors) whenever ``monitor`` improves."""

    def __init__(self, path, monitor: str = "val_accuracy", mode: str | None = None, min_delta: float = 0.0):
        super().__init__(monitor, mode)
        self.path, self.min_delta = Path(path), min_delta

    def on_epoch_end(self, run, record: dict) -> None:
        value = record.get(self.monitor)
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = value, run.epoch
            save(run.model.state_dict(), self.path, metadata={"epoch": str(run.epoch), self.monitor: repr(value)})


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, mode: str | None = None, min_delta: float = 0.0):
        super().__init__(monitor, mode)
        self.patience, self.min_delta = patience, min_delta
        self.wait = 0
        self.stopped_epoch = None

    def on_epoch_end(self, run, record: dict) -> None:
        value = record.get(self.monitor)
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, run.epoch, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                run.stop = True
                self.stopped_epoch = run.epoch


class DivergenceWatch(Callback):
    """Warn when training diverges without the loss becoming NaN: after each epoch, a train or validation loss that
    is NaN/Inf or more than ``factor`` times the starting loss gives one line through ``log`` (default: stderr)
    naming the epoch and both losses. The starting loss is the smaller of the first epoch's mean train loss and,
    when this process trained epoch 1, the loss of its first batch. ``diverged``: the first such epoch's message,
    None while training looks sane."""

    def __init__(self, factor: float = 10.0, log=None):
        if not factor > 1:
            raise ValueError(f"DivergenceWatch: factor must be > 1, got {factor!r}")
        self.factor = factor
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.diverged: str | None = None
        self.diverged_epoch: int | None = None

    def start_loss(self, run) -> float | None:
        losses = [v for v in (run.history.records[0].get("train_loss") if run.history.records else None,
                              run.extra.get("first_loss")) if v is not None and math.isfinite(v)]
        return min(losses) if losses else None

    def on_epoch_end(self, run, record: dict) -> None:
        start = self.start_loss(run)
        bad = []
        for name in ("train_loss", "val_loss"):
            value = record.get(name)
            if value is None:
                continue
            if not math.isfinite(value):
                bad.append(f"{name.replace('_', ' ')} {value}")
            elif start is not None and start > 0 and value > self.factor * start:
                bad.append(f"{name.replace('_', ' ')} {value:.6g}")
        if not bad:
            return
        msg = (f"epoch {run.epoch}: {' and '.join(bad)}, against a starting loss of "
               + (f"{start:.4g}" if start is not None else "unknown")
               + f" (NaN/Inf, or over {self.factor:g}x): training diverged; try a lower learning rate")
        if self.diverged is None:
            self.diverged, self.diverged_epoch = msg, run.epoch
        self.log(f"warning: {msg}")
