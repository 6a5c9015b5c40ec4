"""``fit`` on several ranks: the callback that keeps them in step, metrics reduced over the ranks, rank-0 writers."""

from __future__ import annotations

import zlib

import numpy as np

from .. import _config
from ..training.callbacks import Callback
from ..training.loop import EvalResult
from .comm import DistributedError, get_comm


def replica_checksum(model, optimizer=None) -> int:
    """CRC-32 of the bytes of every parameter and buffer of ``model`` (and the optimizer's state arrays):
    equal on two ranks exactly when their replicas are equal bit for bit."""
    crc = 0
    arrays = [t.array for _, t in model.named_parameters()]
    arrays += [b.array for _, b in model.named_buffers() if b is not None]
    if optimizer is not None:
        for _, st in sorted(optimizer.state_dict()["state"].items()):
            arrays += [v for _, v in sorted(st.items()) if isinstance(v, np.ndarray)]
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8), crc)
    return crc


def check_replicas(model, optimizer=None, comm=None, epoch: int | None = None) -> None:
    """Raise :class:`DistributedError` (on every rank alike) unless all ranks hold the same parameters, buffers,
    optimizer state and ``epoch``. A collective: every rank must call it."""
    comm = comm if comm is not None else get_comm()
    mine = np.array([replica_checksum(model, optimizer), -1 if epoch is None else epoch], dtype=np.int64)
    every = comm.allgather(mine, what="Allgather of the replica checksums")
    if len(set(every[:, 1].tolist())) > 1:
        raise DistributedError(f"the ranks are at different epochs {every[:, 1].tolist()} (rank order): every rank "
                               "must resume from the same checkpoint")
    differ = [r for r in range(comm.size) if every[r, 0] != every[0, 0]]
    if differ:
        raise DistributedError(f"rank(s) {differ} hold other parameters, buffers or optimizer state than rank 0: "
                               "wrap the optimizer in DistributedOptimizer(..., model=model) on every rank, and "
                               "load the same checkpoint on every rank")


def _samples(loader) -> int:
    sampler = getattr(loader, "sampler", None)
    return len(sampler) if sampler is not None else len(loader.dataset)


def reduce_record(record: dict, comm=None, val_samples: int | None = None) -> dict:
    """One rank's epoch record (``fit``'s History fields) -> the whole job's, in place, the same on every rank.

    Losses and accuracies are averaged weighted by each rank's number of images (training: the images it
    trained on; validation: ``val_samples``), epoch_time is the slowest rank's, images_per_s the job's total.
    A collective."""
    comm = comm if comm is not None else get_comm()
    dt = record.get("epoch_time") or 0.0
    seen = float(round((record.get("images_per_s") or 0.0) * dt))
    has_val = record.get("val_loss") is not None
    nv = float(val_samples if val_samples is not None else 1) if has_val else 0.0
    mine = np.array([seen, seen * record["train_loss"], seen * record["train_accuracy"],
                     nv, nv * (record["val_loss"] if has_val else 0.0),
                     nv * (record["val_accuracy"] if has_val else 0.0), dt], dtype=np.float64)
    g = comm.allgather(mine, what="Allgather of the epoch's metrics")
    # Summed in rank order on every rank: every rank gets the same bits (EarlyStopping decides alike).
    s = g.sum(axis=0)
    if s[0] > 0:
        record["train_loss"], record["train_accuracy"] = float(s[1] / s[0]), float(s[2] / s[0])
    if s[3] > 0:
        record["val_loss"], record["val_accuracy"] = float(s[4] / s[3]), float(s[5] / s[3])
    slowest = float(g[:, 6].max())
    record["epoch_time"] = slowest
    record["images_per_s"] = float(s[0] / slowest) if slowest > 0 else float("nan")
    return record


def reduce_eval_result(res: EvalResult, comm=None) -> EvalResult:
    """The EvalResult of the union of every rank's images, from each rank's own (the same on every rank).

    Exact when the ranks' images are disjoint (``DistributedSampler(..., pad=False)``). Every rank must have
    evaluated with the same ``num_classes``. A collective."""
    comm = comm if comm is not None else get_comm()
    g = comm.allgather(np.array([res.loss * res.n, res.n], dtype=np.float64), what="Allgather of evaluation sums")
    confusion = comm.allreduce_(np.ascontiguousarray(res.confusion, dtype=np.int64).copy(),
                                what="Allreduce of the confusion matrix")
    n = int(round(g[:, 1].sum()))
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    return EvalResult(float(g[:, 0].sum() / n), float(np.trace(confusion) / n), per_class, confusion, n)


class DistributedTraining(Callback):
    """The ``fit`` callback of data-parallel training; put it first in ``callbacks``.

    - train begin: checks that every rank holds the same model, optimizer state and epoch (else
      :class:`DistributedError` on every rank, before any step);
    - epoch begin: ``set_epoch`` on the loaders' DistributedSamplers, and (``reseed``) reseeds numcnn's global
      generator and the training loader's transform generator from (seed, epoch, rank): ranks draw different
      dropout masks and augmentations, and a run resumed at epoch e draws what it would have drawn, whatever
      the world size was before;
    - epoch end: reduces the epoch's metrics over the ranks (:func:`reduce_record`), so History, the log line
      and the callbacks after this one (EarlyStopping) see the job's numbers, the same on every rank;
    - ``rank_zero``: callbacks that write files (Checkpoint, BestCheckpoint, metric writers), called on rank 0
      only, after the reduction. Passing them here, rather than to ``fit``, keeps the other ranks from writing.
    """

    def __init__(self, comm=None, *, rank_zero=(), seed: int | None = None, reseed: bool = True,
                 check: bool = True):
        self.comm = comm if comm is not None else get_comm()
        self.rank_zero = list(rank_zero) if self.comm.rank == 0 else []
        self.seed, self.reseed, self.check = seed, reseed, check

    def _seed(self, run) -> int:
        if self.seed is not None:
            return self.seed
        return int(getattr(getattr(run.train_loader, "sampler", None), "seed", 0) or 0)

    def on_train_begin(self, run) -> None:
        if self.check:
            check_replicas(run.model, run.optimizer, self.comm, epoch=len(run.history))
        for cb in self.rank_zero:
            cb.on_train_begin(run)

    def on_epoch_begin(self, run) -> None:
        epoch = run.epoch - 1  # fit counts from 1, samplers from 0 (as a PyTorch loop's set_epoch(epoch))
        for loader in (run.train_loader, run.val_loader):
            sampler = getattr(loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        if self.reseed:
            seed, rank = self._seed(run), self.comm.rank
            state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2, dtype=np.uint64)
            _config.manual_seed(int(state[0]))
            if getattr(run.train_loader, "_transform_rng", None) is not None:
                # The loader's private stream of random transforms, which a checkpoint holds for rank 0 only.
                run.train_loader._transform_rng = np.random.default_rng(int(state[1]))
        for cb in self.rank_zero:
            hook = getattr(cb, "on_epoch_begin", None)
            if hook is not None:
                hook(run)

    def on_epoch_end(self, run, record: dict) -> None:
        val = None
        if record.get("val_loss") is not None and run.val_loader is not None:
            val = _samples(run.val_loader)
        reduce_record(record, self.comm, val_samples=val)
        for cb in self.rank_zero:
            cb.on_epoch_end(run, record)

    def on_train_end(self, run) -> None:
        for cb in self.rank_zero:
            cb.on_train_end(run)
