"""fit / evaluate / predict: the training loop, with train()/eval() switched where they must be."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..autograd import anomaly
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn import functional as F
from .history import History
from .progress import EpochProgress


class TrainingDiverged(RuntimeError):
    """The loss became NaN or Inf; training stopped. :class:`~numcnn.training.callbacks.Checkpoint` writes no epoch
    whose validation loss is not finite, so the checkpoint left is the last one whose validation loss was finite."""


@dataclass
class Run:
    """What callbacks see: the objects being trained and where the run stands."""

    model: object
    optimizer: object
    scheduler: object
    loss_fn: object
    train_loader: object
    val_loader: object
    epochs: int
    history: History
    epoch: int = 0
    batch: int = 0
    stop: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray  # (C, C) int64: rows = true class, columns = predicted class
    n: int

    def __repr__(self) -> str:
        return f"EvalResult(loss={self.loss:.4f}, accuracy={self.accuracy:.4f}, n={self.n})"


def _per_batch_scheduler(scheduler) -> bool:
    return type(scheduler).__name__ in ("OneCycleLR", "CyclicLR")


def _as_batch(x):
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def fit(model, train_loader, val_loader=None, *, epochs: int, optimizer, loss_fn=F.cross_entropy, scheduler=None,
        scheduler_interval: str = "auto", callbacks=(), history: History | None = None, verbose: bool = True,
        log=None, detect_anomaly: bool = False) -> History:
    """Train ``model`` for ``epochs`` epochs in total and return the :class:`History`.

    Batches are ``(images, labels)``; ``loss_fn(outputs, labels)`` gives a scalar. With a ``history`` from a
    checkpoint (see :func:`resume`), training continues at epoch ``len(history) + 1``. The scheduler steps once
    per batch for OneCycleLR and once per epoch otherwise (``scheduler_interval`` "batch"/"epoch" overrides).
    A NaN/Inf loss raises :class:`TrainingDiverged` naming the epoch and batch.
    ``verbose``: a progress bar on a terminal, else one line per epoch through ``log`` (default: stderr).
    ``detect_anomaly``: train under :class:`numcnn.autograd.anomaly.detect_anomaly`, so that the first NaN/Inf in a
    forward output or a gradient raises :class:`~numcnn.autograd.anomaly.AnomalyError` naming the operation, the
    module path, the epoch and the batch (slow: for debugging).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
    if scheduler_interval not in ("auto", "batch", "epoch"):
        raise ValueError(f"fit: scheduler_interval must be 'auto', 'batch' or 'epoch', got {scheduler_interval!r}")
    per_batch = scheduler is not None and (
        scheduler_interval == "batch" or (scheduler_interval == "auto" and _per_batch_scheduler(scheduler)))
    history = history if history is not None else History()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    run = Run(model, optimizer, scheduler, loss_fn, train_loader, val_loader, epochs, history, epoch=len(history))
    for cb in callbacks:
        cb.on_train_begin(run)
    while run.epoch < epochs and not run.stop:
        run.epoch += 1
        for cb in callbacks:
            begin = getattr(cb, "on_epoch_begin", None)  # duck-typed callbacks may lack it
            if begin is not None:
                begin(run)
        if detect_anomaly:
            try:
                with anomaly.detect_anomaly(model):
                    record = _train_epoch(run, per_batch, verbose)
            except anomaly.AnomalyError as e:
                e.epoch, e.batch = run.epoch, run.batch
                raise
        else:
            record = _train_epoch(run, per_batch, verbose)
        if scheduler is not None and not per_batch:
            scheduler.step()
        if val_loader is not None:
            res = evaluate(model, val_loader, loss_fn)
            record["val_loss"], record["val_accuracy"] = res.loss, res.accuracy
        history.append(record)
        for cb in callbacks:
            cb.on_epoch_end(run, history.last)
        if verbose:
            log(_epoch_line(history.last, epochs))
    for cb in callbacks:
        cb.on_train_end(run)
    return history


def _train_epoch(run: Run, per_batch: bool, verbose: bool) -> dict:
    model, opt = run.model, run.optimizer
    model.train()
    bar = EpochProgress(len(run.train_loader), run.epoch, run.epochs, enabled=verbose)
    t0 = time.perf_counter()
    seen = correct = 0
    loss_sum = 0.0
    lr = opt.param_groups[0]["lr"]
    try:
        for batch, (x, y) in enumerate(run.train_loader, 1):
            run.batch = batch
            x, y = _as_batch(x), _as_batch(y)
            lr = opt.param_groups[0]["lr"]
            out = model(x)
            loss = run.loss_fn(out, y)
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the loss became {value} at epoch {run.epoch}, batch {run.batch}: training stopped; the last "
                    "checkpoint written (if any) is the last one whose validation loss was finite. Try a lower "
                    "learning rate."
                )
            if run.epoch == 1 and batch == 1:
                run.extra["first_loss"] = value  # where the run starts, for DivergenceWatch
            opt.zero_grad()
            loss.backward()
            opt.step()
            if per_batch:
                run.scheduler.step()
            n = len(y)
            seen += n
            loss_sum += value * n
            correct += int((out.array.argmax(axis=1) == y.array).sum())
            bar.update(loss_sum / seen, correct / seen, seen / (time.perf_counter() - t0))
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    return {"epoch": run.epoch, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
            "lr": lr, "epoch_time": dt, "images_per_s": seen / dt if dt > 0 else float("nan")}


def _epoch_line(r: dict, epochs: int) -> str:
    s = f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.4f}"
    if r.get("val_loss") is not None:
        s += f" | val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.4f}"
    return s + f" | lr {r['lr']:.3g} | {r['epoch_time']:.1f} s, {r['images_per_s']:.0f} img/s"


def evaluate(model, loader, loss_fn=F.cross_entropy, num_classes: int | None = None) -> EvalResult:
    """Loss, accuracy, per-class accuracy and confusion matrix of ``model`` (in eval mode) over ``loader``.
    The model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    loss_sum, n = 0.0, 0
    preds, labels = [], []
    try:
        with no_grad():
            for x, y in loader:
                x, y = _as_batch(x), _as_batch(y)
                out = model(x)
                loss_sum += loss_fn(out, y).item() * len(y)
                n += len(y)
                preds.append(out.array.argmax(axis=1))
                labels.append(y.array)
                num_classes = num_classes or out.shape[1]
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError("evaluate: the loader yielded no batches")
    p, t = np.concatenate(preds), np.concatenate(labels).astype(np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (t, p), 1)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return EvalResult(loss_sum / n, float((p == t).mean()), per_class, confusion, n)


def predict(model, x, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (softmax of the logits), float32 (N, num_classes), for images ``x`` (N, C, H, W)
    (Tensor or ndarray), in eval mode, in batches; the model's mode is restored afterwards."""
    arr = x.array if isinstance(x, Tensor) else np.asarray(x)
    if arr.dtype != np.float32:
        raise TypeError(f"predict: expected float32 images, got {arr.dtype} (convert with ToTensor or .float())")
    was_training = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for i in range(0, len(arr), batch_size):
                outs.append(F.softmax(model(Tensor(arr[i : i + batch_size])), dim=1).array)
    finally:
        model.train(was_training)
    return np.concatenate(outs)


def resume(folder, *, model, optimizer=None, scheduler=None, train_loader=None) -> History:
    """Load a checkpoint written by :class:`~numcnn.training.callbacks.Checkpoint` into these objects and return its
    History; pass it to ``fit(..., history=...)`` to continue where the run stopped, bit for bit."""
    from .checkpoint import load_checkpoint

    _, history = load_checkpoint(folder, model=model, optimizer=optimizer, scheduler=scheduler,
                                 train_loader=train_loader)
    return history
