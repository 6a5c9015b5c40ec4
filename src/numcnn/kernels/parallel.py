"""Intra-op parallelism: a kernel cuts its work into parts (batch chunks, channel blocks) and runs them on threads.

Why: NumPy's copies and elementwise loops use one core, and OpenBLAS spreads one GEMM over all of them, which pays
off badly for the skinny GEMMs of a small CNN. On a 2-core machine, two threads that each unfold and
multiply half of the batch with a single-threaded GEMM beat one thread with a 2-thread GEMM (figures in
docs/performance.md). NumPy releases the
GIL inside its loops over large arrays and around BLAS calls, so plain Python threads run those parts at once.

Rules that keep results independent of the number of threads:

- How work is cut is a function of shapes (and the workspace budget) only, never of the thread count; each part
  writes its own slice of the output, and partial sums are added by the caller in part order. So 1, 2 or 16 threads
  give the same bits (given the same BLAS: OpenBLAS partitions a GEMM's output, not its sums, over threads).
- While parts run, the BLAS pool is held at one thread and restored afterwards, so parts do not oversubscribe cores
  (from the main thread only: OpenBLAS ignores thread-count changes from other threads once it has run).
  Small GEMMs outside the parts (``matmul``) run single-threaded as well: a GEMM spread over OpenBLAS's threads
  leaves them spinning for a while after it returns, and the next kernel's parts then share their cores with
  spinning threads.
- Regions do not nest: a part that calls a parallel kernel runs it in its own thread. Two user threads calling
  kernels at once: one of them gets the workers, the other runs its parts one after another.

The workers are numcnn's own threads (``_Pool``): the caller waits for them by spinning briefly (with the compiled
backend), they wait for the next region asleep. A forked child starts its own workers on first use.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import jit
from .jit import kernel, wait_while
from .runtime import runtime

__all__ = ["CACHE_BLOCK_BYTES", "blas_serial", "cache_blocks", "matmul", "run", "split"]

_state: dict[str, Any] = {"pool": None, "blas": None}
_region = threading.Lock()
_local = threading.local()


def split(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into ``parts`` contiguous ranges of near-equal size (the first ones one longer); never an empty
    range, so fewer than ``parts`` when n < parts."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    bounds = [0]
    for i in range(parts):
        bounds.append(bounds[-1] + base + (i < extra))
    return [(bounds[i], bounds[i + 1]) for i in range(parts) if bounds[i + 1] > bounds[i]]


# Kernels that make several passes over an array (batch norm, max-pool backward) work in blocks of about this
# many bytes: a block stays in a core's L2 cache (4 MiB here) through all the passes instead of streaming every
# pass from memory.
CACHE_BLOCK_BYTES = 1 << 20


def cache_blocks(n: int, bytes_per_item: int) -> list[tuple[int, int]]:
    """[0, n) in ranges of about CACHE_BLOCK_BYTES (at least one item each). Depends on the sizes only."""
    size = max(1, min(n, CACHE_BLOCK_BYTES // max(1, bytes_per_item)))
    return [(i, min(n, i + size)) for i in range(0, n, size)]


def _blas_pools() -> list:
    """The BLAS NumPy calls (the one numcnn's GEMMs run on): the loaded BLAS libraries under NumPy's own folder
    (its wheel bundles one), else every loaded BLAS (a NumPy linked against the system's). Another library's BLAS
    (SciPy's, loaded with Numba) is left alone: numcnn never calls it."""
    if _state["blas"] is None:
        try:
            from threadpoolctl import ThreadpoolController

            found = list(ThreadpoolController().select(user_api="blas").lib_controllers)
            home = os.path.dirname(os.path.dirname(np.__file__))
            own = [c for c in found if os.path.basename(c.filepath).startswith("libscipy_openblas64_")
                   or c.filepath.startswith(os.path.join(home, "numpy"))]
            _state["blas"] = own or found
        except Exception:  # no threadpoolctl-visible BLAS: nothing to limit
            _state["blas"] = []
    return _state["blas"]


def _worker(fn: Callable, items: Sequence, results: list, counter, errors: list) -> None:
    _local.active = True
    try:
        while (i := next(counter)) < len(items):
            results[i] = fn(items[i])
    except BaseException as e:  # raised by run() once every thread has stopped
        errors.append(e)
    finally:
        _local.active = False


def _hold_blas_serial() -> list:
    """Set the BLAS pool to one thread; returns what to give back to ``_release_blas_serial``.

    Only the main thread changes it: once OpenBLAS has run, it ignores ``openblas_set_num_threads`` from any other
    thread (measured with OpenBLAS 0.3.31: a worker thread's call leaves the count unchanged), so a restore from
    another thread could never happen. Kernels called from another thread leave the pool as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        return []
    saved = [(lib, n) for lib in _blas_pools() if (n := lib.num_threads) != 1]
    for lib, _ in saved:
        lib.set_num_threads(1)
    return saved


def _release_blas_serial(saved: list) -> None:
    for lib, n in saved:
        lib.set_num_threads(n)


class blas_serial:  # noqa: N801 - used like a function, as threadpoolctl's threadpool_limits
    """Context manager: the BLAS pool runs single-threaded inside (nesting-aware; see ``_hold_blas_serial`` for
    calls from threads other than the main one)."""

    def __enter__(self):
        depth = getattr(_local, "serial", 0)
        _local.serial = depth + 1
        self._saved = _hold_blas_serial() if depth == 0 else []
        return self

    def __exit__(self, *exc):
        _local.serial -= 1
        _release_blas_serial(self._saved)
        return False


# A GEMM below this many multiply-adds runs single-threaded (see the module docstring); above it, OpenBLAS's
# threads pay for their wake-up and spin.
SERIAL_GEMM_MACS = 16 << 20


def matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)``, single-threaded when small (``SERIAL_GEMM_MACS``). Same result either way:
    OpenBLAS splits a GEMM's output, not its sums, over threads."""
    macs = a.shape[-2] * a.shape[-1] * b.shape[-1] if a.ndim >= 2 and b.ndim >= 2 else 0
    if macs >= SERIAL_GEMM_MACS:
        return np.matmul(a, b, out=out)
    with blas_serial():
        return np.matmul(a, b, out=out)


def run(fn: Callable[[Any], Any], items: Sequence, blas: bool = True) -> list:
    """``[fn(item) for item in items]``, with the items shared out over the threads (each thread takes the next
    undone item). Results come back in the items' order; an exception in any item is raised after all have stopped.
    ``blas=False`` promises that ``fn`` calls no BLAS: the pool's thread count is then left alone.
    """
    threads = min(runtime.threads, len(items))
    if threads <= 1 or getattr(_local, "active", False) or not _region.acquire(blocking=False):
        if not blas:
            return [fn(item) for item in items]
        with blas_serial():
            return [fn(item) for item in items]
    try:
        pool = _state["pool"]
        if pool is None or pool.size != runtime.threads - 1:  # first use, or runtime.threads changed
            if pool is not None:
                pool.shutdown()
            pool = _state["pool"] = _Pool(runtime.threads - 1)
        saved = _hold_blas_serial() if blas else []
        try:
            return pool.run(fn, items, threads - 1)
        finally:
            _release_blas_serial(saved)
    finally:
        _region.release()


@kernel
def _spin(flags, i, value, spins):
    """Wait, holding no GIL, while flags[i] == value, for at most ``spins`` spins; returns flags[i]."""
    return wait_while(flags, i, value, spins)


WAIT_SPIN_S = 0.002  # how long the calling thread spins for the workers to finish before it sleeps


class _Pool:
    """``size`` worker threads, each parked on its own lock. A region hands the task to the workers it needs and
    releases their locks, runs items on the calling thread too, then waits for each worker: first spinning (in
    compiled code, holding no GIL) for up to ``WAIT_SPIN_S`` on the worker's ``finished`` flag, then on its
    ``done`` lock. Against a thread-pool executor's futures and queues, a region with two items of 85 us took
    102-110 us instead of 138-166 (the caller no longer sleeps while the worker finishes); a convnet training step's
    minimum went from 17.5-18.7 to 16.6-17.2 ms and lenet5's from 7.2-7.4 to 5.4-6.0 ms (steps alternated with the
    old pool in one process). Workers never spin: between regions they sleep, so they take no core from the next
    library call."""

    def __init__(self, size: int):
        self.size, self.task, self.region = size, None, 0
        # finished[8*i]: the last region worker i finished (a cache line each), which the calling thread spins on:
        # a thread asleep on a lock wakes 20-40 us after it is released on a small VM (its virtual CPU halted), a
        # pooling layer's worth of work
        self.finished = np.zeros(8 * size, np.int64)
        self.spins = 0
        if jit.use_compiled():
            _spin(self.finished, 0, 1, 1)  # compiled (or loaded from the cache) before it is timed
            t0 = time.perf_counter()
            _spin(self.finished, 0, 0, 10000)
            self.spins = int(10000 * WAIT_SPIN_S / max(time.perf_counter() - t0, 1e-9))
        self.go = [threading.Lock() for _ in range(size)]
        self.done = [threading.Lock() for _ in range(size)]
        for lock in (*self.go, *self.done):
            lock.acquire()
        self.threads = [threading.Thread(target=self._loop, args=(i,), name=f"numcnn_{i}", daemon=True)
                        for i in range(size)]
        for t in self.threads:
            t.start()

    def _loop(self, i: int) -> None:
        go, done = self.go[i], self.done[i]
        while True:
            go.acquire()
            task = self.task
            if task is None:
                done.release()
                return
            _worker(*task[:5])
            # The lock first, then the flag: a caller that saw the flag takes the lock without sleeping. (A caller
            # whose spin ran out may take the lock and start the next region before the flag is written; it then
            # sees a changed flag at once and waits on the lock: slower, never wrong.)
            done.release()
            self.finished[8 * i] = task[5]

    def run(self, fn, items, workers: int) -> list:
        results: list = [None] * len(items)
        errors: list = []
        counter = itertools.count()
        self.region += 1
        self.task = (fn, items, results, counter, errors, self.region)
        before = self.finished[: 8 * workers : 8].tolist()
        for lock in self.go[:workers]:
            lock.release()
        _worker(fn, items, results, counter, errors)
        for i, lock in enumerate(self.done[:workers]):
            if self.spins:
                _spin(self.finished, 8 * i, before[i], self.spins)
            lock.acquire()
        if errors:
            raise errors[0]
        return results

    def shutdown(self) -> None:
        self.task = None
        for go, done in zip(self.go, self.done, strict=True):
            go.release()
            done.acquire()


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker, an MPI rank started by fork) has none of the parent's worker threads,
    and the region lock may have been held by a thread that is gone: start from nothing."""
    global _region
    _state["pool"] = None
    _region = threading.Lock()
    _local.__dict__.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
