"""DataLoader workers: threads (the default) or processes that fetch and collate batches in parallel.

Batch k goes to worker ``k % num_workers`` (as torch), every worker handles its batches in the order it gets them
and the loader hands batches out in order k = 0, 1, 2, ...: the batches and their order do not depend on timing,
and a worker's random draws (``get_worker_info().rng``) see the same items in the same order on every run.

Worker ``w`` is seeded with ``base_seed + w`` (``base_seed`` drawn from the loader's generator once per
iteration): ``get_worker_info().seed`` and ``.rng`` (a ``numpy.random.Generator`` of that seed, which numcnn's
random per-item transforms draw from inside a worker). In a worker, ``.rng`` is also numcnn's global generator
(``numcnn.rand``, ``numcnn.initial_seed()``, ``numcnn.manual_seed`` act on the worker's own), as a torch worker
process has its own. A worker *process* also seeds Python's ``random`` and NumPy's legacy global generator with it,
as torch does. Worker *threads* share those two with the whole process, so they take turns (:class:`Turns`): inits in
worker order, then one fetch at a time in batch order. A dataset drawing from ``np.random`` (reseeded per worker by a
``worker_init_fn``, PyTorch's reproducibility recipe) then gives the same batches on every run.

Why threads by default: see ``DataLoader``'s docstring. Processes start by ``spawn``,
``forkserver`` or ``fork`` (``multiprocessing_context=``): forking a process whose Numba/BLAS thread pools are
running can deadlock the child, so numcnn never forks by default.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from numcnn._config import default_generator, enter_worker_thread, manual_seed

__all__ = ["DEFAULT_CONTEXT", "WorkerInfo", "WorkerPool", "get_worker_info", "is_exhausted", "worker_rng"]

#: What ``multiprocessing_context=None`` means: None = worker threads; a start method name ("forkserver", "spawn",
#: "fork") would make worker processes the default (see DataLoader's docstring for why threads).
DEFAULT_CONTEXT: str | None = None
_POLL = 1.0  # seconds between checks that worker processes are still alive
_local = threading.local()  # a worker thread's WorkerInfo
_process_info: dict[str, Any] = {"info": None}  # a worker process's WorkerInfo


@dataclass
class WorkerInfo:
    """What a worker knows about itself: ``id``, ``num_workers``, ``seed``, ``dataset`` and ``rng``."""

    id: int
    num_workers: int
    seed: int
    dataset: Any
    rng: np.random.Generator


def get_worker_info() -> WorkerInfo | None:
    """The calling worker's WorkerInfo, or None outside DataLoader workers (torch.utils.data.get_worker_info)."""
    return getattr(_local, "info", None) or _process_info["info"]


def worker_rng() -> np.random.Generator | None:
    """The calling worker's generator, or None outside a worker."""
    info = get_worker_info()
    return None if info is None else info.rng


class _Failure:
    """An exception raised in a worker, carried to the main thread with its text."""

    def __init__(self, worker_id: int, err: BaseException) -> None:
        self.worker_id, self.err = worker_id, err
        self.text = f"{type(err).__name__}: {err}"


class _Exhausted:
    """An iterable dataset's worker has no more batches."""


def is_exhausted(out: Any) -> bool:
    """Whether a worker's result says that its iterable dataset has ended."""
    return isinstance(out, _Exhausted)


class Turns:
    """Worker threads take turns: inits in worker order, then tasks in id order, one at a time. Dataset code then
    never runs in two threads at once, so what it does to process-wide state (NumPy's and Python's global
    generators, reseeded by a ``worker_init_fn``; a shared file handle) happens in the same order on every run, as in
    one process. The fetches still overlap the main thread's training step (kernels release the GIL)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._init = self._task = 0
        self.broken = False

    def wait(self, kind: str, k: int) -> bool:
        """Wait for turn ``k`` of ``kind`` ("init" or "task"); False when a worker failed and turns stopped."""
        with self._cond:
            self._cond.wait_for(lambda: self.broken or getattr(self, "_" + kind) == k)
            return not self.broken

    def done(self, kind: str, failed: bool = False) -> None:
        with self._cond:
            setattr(self, "_" + kind, getattr(self, "_" + kind) + 1)
            self.broken = self.broken or failed
            self._cond.notify_all()


class _NoTurns:
    """Worker processes need no turns: each has its own globals."""

    def wait(self, kind: str, k: int) -> bool:  # noqa: ARG002
        return True

    def done(self, kind: str, failed: bool = False) -> None:
        pass


def _worker_loop(worker_id: int, num_workers: int, seed: int, dataset: Any, fetch: Callable, init_fn: Callable | None,
                 tasks: Any, results: Any, turns: Turns | None) -> None:
    """Take ``(k, epoch, indices)`` tasks until ``None``; put ``(k, fetch(...) or _Failure or _Exhausted)``. A
    worker process (``turns`` None) seeds its process's generators; a worker thread takes its ``turns``."""
    if turns is None:
        turns = _NoTurns()
        random.seed(seed)
        np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global, which user transforms may draw from
        manual_seed(seed)
        info = WorkerInfo(worker_id, num_workers, seed, dataset, default_generator())
        _process_info["info"] = info
    else:
        info = WorkerInfo(worker_id, num_workers, seed, dataset, np.random.default_rng(seed))
        _local.info = info
        enter_worker_thread(seed, info.rng)  # numcnn's global generator in this thread is the worker's own
    state: dict[str, Any] = {}
    if not turns.wait("init", worker_id):
        return
    failed = False
    try:
        if init_fn is not None:
            init_fn(worker_id)
    except Exception as err:  # noqa: BLE001 - reported to the main thread
        failed = True
        results.put((-1, _Failure(worker_id, err)))
        return
    finally:
        turns.done("init", failed)
    while (task := tasks.get()) is not None:
        k, state["epoch"], indices = task
        if not turns.wait("task", k):
            return
        try:
            out = fetch(dataset, indices, state)
        except StopIteration:
            out = _Exhausted()
        except Exception as err:  # noqa: BLE001 - reported to the main thread
            out = _Failure(worker_id, err)
        finally:
            turns.done("task")
        results.put((k, out))


class WorkerPool:
    """``num_workers`` workers running ``fetch(dataset, indices, state)``, results handed back in task order."""

    def __init__(self, dataset: Any, fetch: Callable, num_workers: int, base_seed: int, init_fn: Callable | None,
                 context: Any, timeout: float) -> None:
        self.num_workers, self.timeout = num_workers, timeout
        self._next_worker = 0
        context = DEFAULT_CONTEXT if context is None else context
        self._pending: dict[int, Any] = {}
        self._count = self._floor = 0  # task ids given out; ids below the floor belong to an abandoned epoch
        self.epoch = 0
        if context is None:
            self._tasks = [queue.SimpleQueue() for _ in range(num_workers)]
            self._results: Any = queue.SimpleQueue()
            make = threading.Thread
            turns: Turns | None = Turns()
        else:
            ctx = multiprocessing.get_context(context) if isinstance(context, str) else context
            self._tasks = [ctx.Queue() for _ in range(num_workers)]
            self._results = ctx.Queue()
            make = ctx.Process
            turns = None
        self._workers = [
            make(target=_worker_loop, daemon=True,
                 args=(w, num_workers, base_seed + w, dataset, fetch, init_fn, self._tasks[w], self._results,
                       turns))
            for w in range(num_workers)
        ]
        for worker in self._workers:
            worker.start()

    def submit(self, indices: Any, worker: int | None = None) -> int:
        """Queue a task on ``worker`` (default: the next one, round-robin); return its id."""
        if worker is None:
            worker, self._next_worker = self._next_worker, (self._next_worker + 1) % self.num_workers
        k, self._count = self._count, self._count + 1
        self._tasks[worker].put((k, self.epoch, indices))
        return k

    def result(self, k: int) -> Any:
        """The result of task k (waiting for it); a worker's exception is raised here."""
        waited = 0.0
        while k not in self._pending:
            step = _POLL if not self.timeout else min(_POLL, self.timeout - waited)
            try:
                j, out = self._results.get(timeout=step)
            except queue.Empty:
                waited += step
                self._check_alive()
                if self.timeout and waited >= self.timeout:
                    raise RuntimeError(f"DataLoader timed out after {self.timeout} seconds waiting for a "
                                       f"batch") from None
                continue
            if j >= self._floor or j == -1:
                self._pending[j] = out
            if j == -1:
                break
        out = self._pending.pop(-1, None) or self._pending.pop(k)
        if isinstance(out, _Failure):
            raise RuntimeError(f"DataLoader worker {out.worker_id} failed: {out.text}") from out.err
        return out

    def _check_alive(self) -> None:
        """A worker process that died (killed, crashed, or failed to start) ends the wait with an error."""
        for w, worker in enumerate(self._workers):
            code = getattr(worker, "exitcode", None)
            if code is not None:
                raise RuntimeError(
                    f"DataLoader worker {w} (pid {worker.pid}) exited unexpectedly with exit code {code}; with "
                    f"spawn/forkserver the script must start its loaders under `if __name__ == \"__main__\":`")

    def new_epoch(self) -> None:
        """Start an epoch: results of earlier tasks (an epoch left early) are dropped, workers restart at 0."""
        self._pending.clear()
        self._floor = self._count
        self._next_worker = 0
        self.epoch += 1

    def close(self) -> None:
        for q in self._tasks:
            q.put(None)
        for worker in self._workers:
            worker.join(timeout=5)
            if worker.is_alive() and hasattr(worker, "terminate"):
                worker.terminate()
