"""The kernels' one runtime object: how many threads, how much scratch memory, the pool of scratch arrays, and
the table of which algorithm each convolution runs.

Everything here is process-wide state that decides how kernels work but never what they compute, except two
settings that can move the last bits of a result: the memory budget (it decides how a batch is cut into chunks, and
so how sums are grouped) and the algorithm table. Both are part of :meth:`Runtime.state_dict`, so a checkpoint that
saves the runtime's state and a resume that loads it compute exactly as the run they continue. The thread count is
not: results never depend on it.

    from numcnn.kernels.runtime import runtime
    runtime.threads = 2
    with runtime.scoped(memory_budget=64 << 10, autotune=True):
        ...                     # everything is restored on the way out, even after an exception
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["Runtime", "Workspace", "runtime"]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _env_budget() -> int:
    value = os.environ.get("NUMCNN_MEMORY_BUDGET_MB")
    if value is None:
        return 8 << 20
    try:
        budget = int(float(value) * (1 << 20))
    except ValueError:
        budget = 0
    if budget <= 0:
        raise ValueError(f"NUMCNN_MEMORY_BUDGET_MB must be a positive number of MiB, got {value!r}")
    return budget


BACKENDS = ("numpy", "numba")


def _env_backend() -> tuple[str, bool]:
    """The kernel backend NUMCNN_KERNELS asks for (explicitly), else numba when it is installed."""
    value = os.environ.get("NUMCNN_KERNELS")
    if value is None:
        return ("numba" if importlib.util.find_spec("numba") is not None else "numpy"), False
    if value not in BACKENDS:
        raise ValueError(f"NUMCNN_KERNELS must be one of {BACKENDS}, got {value!r}")
    return value, True


def _positive_int(value, what: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what}: expected a positive int, got {value!r}")
    return int(value)


class Workspace:
    """A pool of scratch arrays keyed by (shape, dtype), holding at most ``limit()`` bytes.

    Why: a fresh multi-megabyte array is mapped page by page on first touch, which can cost as much as the
    convolution that writes it. Kernels ``take`` their scratch arrays and ``give`` them back when done. Rules that
    keep reuse from ever changing a result: an array taken belongs to the taker alone until given back; the pool
    files an array only for a later ``take`` of the same shape and dtype, forgets the oldest beyond its limit, and
    never files one array twice; take and give hold a lock (kernels call them from several threads).
    """

    def __init__(self, limit: Callable[[], int]):
        self.limit = limit
        self._free: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()  # least recently filed key first
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` with arbitrary contents, owned by the caller."""
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            arrays = self._free.get(key)
            if arrays:
                arr = arrays.pop()
                self._bytes -= arr.nbytes
                if not arrays:
                    del self._free[key]
                return arr
        return np.empty(key[0], dtype=key[1])

    def give(self, arr: np.ndarray | None) -> None:
        """File an array obtained from ``take`` (None is ignored); the caller must not touch it afterwards."""
        if arr is None or arr.nbytes > self.limit():
            return
        key = (arr.shape, arr.dtype)
        with self._lock:
            arrays = self._free.setdefault(key, [])
            if any(a is arr for a in arrays):  # given twice: filing it again would hand it to two takers
                return
            arrays.append(arr)
            self._free.move_to_end(key)
            self._bytes += arr.nbytes
            while self._bytes > self.limit() and self._free:
                old_key = next(iter(self._free))
                old = self._free[old_key]
                self._bytes -= old.pop(0).nbytes
                if not old:
                    del self._free[old_key]

    def clear(self) -> None:
        """Drop every pooled array (their memory goes back to the allocator)."""
        with self._lock:
            self._free.clear()
            self._bytes = 0

    def arrays(self) -> list[np.ndarray]:
        """The free arrays the pool holds (what the next takers will get)."""
        with self._lock:
            return [a for arrays in self._free.values() for a in arrays]

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool (free arrays waiting for reuse)."""
        return self._bytes


class Runtime:
    """Threads, memory budget, workspace pool, algorithm table and autotune flag of numcnn's kernels.

    - ``backend``: "numba" (compiled kernels, the default when Numba is installed) or "numpy"; NUMCNN_KERNELS
      chooses it from the environment. The two agree to float rounding, not to the bit.
    - ``threads``: how many threads a kernel shares its parts out over (the caller's included; default: the CPUs
      this process may use). Setting it also limits the BLAS pool NumPy uses to the same number, so the two never
      oversubscribe the cores. Results do not depend on it.
    - ``memory_budget``: the largest scratch array (bytes) one kernel call may use; larger work is cut over the
      batch (default 8 MiB, or ``NUMCNN_MEMORY_BUDGET_MB``). Changing it empties the pool.
    - ``pool``: the :class:`Workspace` of scratch arrays, holding at most ``4 * memory_budget`` bytes.
    - ``algorithms``: key -> algorithm name, e.g. the convolution algorithm chosen for a layer's shapes (the keys
      and names are the business of whoever fills the table: ``kernels.conv.autotune``); ``timings`` holds the
      measurements behind measured entries; ``autotune``: whether missing entries are measured.
    """

    def __init__(self):
        self._threads = _cpu_count()
        self._budget = _env_budget()
        self._backend, self.backend_explicit = _env_backend()
        self.pool = Workspace(self.pool_limit)
        self.algorithms: dict[str, str] = {}
        self.timings: dict[str, dict[str, float]] = {}
        self.autotune = False
        self.lock = threading.Lock()  # guards algorithms and timings
        self._table_checks: list[Callable[[str, str], None]] = []
        self._blas_limit = None

    # ---- threads and memory

    @property
    def threads(self) -> int:
        return self._threads

    @threads.setter
    def threads(self, n: int) -> None:
        self._threads = _positive_int(n, "threads")
        from threadpoolctl import threadpool_limits

        if self._blas_limit is not None:
            self._blas_limit.restore_original_limits()
        self._blas_limit = threadpool_limits(limits=self._threads)

    @property
    def memory_budget(self) -> int:
        return self._budget

    @memory_budget.setter
    def memory_budget(self, nbytes: int) -> None:
        self._budget = _positive_int(nbytes, "memory_budget (bytes)")
        self.pool.clear()

    def pool_limit(self) -> int:
        """Most bytes the pool keeps between calls: room for a few budget-sized arrays."""
        return 4 * self._budget

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, name: str) -> None:
        if name not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {name!r}")
        if name == "numba" and importlib.util.find_spec("numba") is None:
            raise ValueError("backend: 'numba' is not installed here (pip install numba), so only 'numpy' can run")
        self._backend, self.backend_explicit = name, True

    # ---- the algorithm table

    def add_table_check(self, check: Callable[[str, str], None]) -> None:
        """Register ``check(key, value)``, which raises ValueError for an entry it refuses (used when loading)."""
        self._table_checks.append(check)

    def load_algorithms(self, table) -> None:
        """Replace the table by ``table``, checked whole first: a ValueError names the first bad entry and leaves the
        table as it was. The timings are dropped (the loaded choices were not measured here)."""
        if not isinstance(table, dict):
            raise ValueError(f"algorithm table: expected a dict of key -> algorithm, got {type(table).__name__}")
        for key, value in table.items():
            if not isinstance(key, str):
                raise ValueError(f"algorithm table: keys must be strings, got {key!r} ({type(key).__name__})")
            for check in self._table_checks:
                check(key, value)
        with self.lock:
            self.algorithms = dict(table)
            self.timings = {}

    # ---- state

    def state_dict(self) -> dict:
        """What decides the bits of a result, as plain JSON-able values: the kernel backend, the memory budget, the
        algorithm table and the autotune flag (the thread count is left out: results do not depend on it)."""
        with self.lock:
            return {"backend": self._backend, "memory_budget": self._budget, "algorithms": dict(self.algorithms),
                    "autotune": self.autotune}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; keys it lacks keep their current values. Everything is checked before
        anything changes. A different backend is taken over unless one was asked for explicitly (NUMCNN_KERNELS or
        ``runtime.backend = ...``): then the state is refused, since results continue bit for bit only on the
        kernels that computed them."""
        if not isinstance(state, dict):
            raise ValueError(f"runtime state: expected a dict, got {type(state).__name__}")
        unknown = set(state) - {"backend", "memory_budget", "algorithms", "autotune"}
        if unknown:
            raise ValueError(f"runtime state: unknown keys {sorted(unknown)}")
        budget = state.get("memory_budget", self._budget)
        _positive_int(budget, "runtime state: memory_budget")
        autotune = state.get("autotune", self.autotune)
        if not isinstance(autotune, bool):
            raise ValueError(f"runtime state: autotune must be true or false, got {autotune!r}")
        backend = state.get("backend", self._backend)
        self._check_backend(backend)
        if "algorithms" in state:
            self.load_algorithms(state["algorithms"])
        if budget != self._budget:
            self.memory_budget = budget
        self.autotune = autotune
        self._backend = backend

    def _check_backend(self, backend) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"runtime state: backend must be one of {BACKENDS}, got {backend!r}")
        if backend == self._backend:
            return
        if self.backend_explicit:
            raise ValueError(f"runtime state: computed with the {backend!r} kernels, but the {self._backend!r} "
                             "kernels were asked for (NUMCNN_KERNELS or runtime.backend): a run continues bit for "
                             f"bit only on the kernels it started with; ask for {backend!r}, or do not ask")
        if backend == "numba" and importlib.util.find_spec("numba") is None:
            raise ValueError("runtime state: computed with the 'numba' kernels, which are not installed here "
                             "(pip install numba)")

    @contextlib.contextmanager
    def scoped(self, *, threads: int | None = None, memory_budget: int | None = None, autotune: bool | None = None,
               algorithms: dict | None = None, backend: str | None = None) -> Iterator[Runtime]:
        """Apply the given settings inside the block and restore every setting (and an empty table's emptiness)
        afterwards."""
        saved = self._threads, self._budget, self.autotune, dict(self.algorithms), dict(self.timings)
        saved_limit = self._blas_limit
        saved_backend = self._backend, self.backend_explicit
        try:
            if backend is not None:
                self.backend = backend
            if threads is not None:
                self.threads = threads
            if memory_budget is not None:
                self.memory_budget = memory_budget
            if autotune is not None:
                self.autotune = bool(autotune)
            if algorithms is not None:
                self.load_algorithms(algorithms)
            yield self
        finally:
            if self._blas_limit is not saved_limit:  # threads were set inside: give BLAS back its pool too
                if saved_limit is None:
                    self._blas_limit.restore_original_limits()
                    self._blas_limit, self._threads = None, saved[0]
                else:
                    self.threads = saved[0]
            if self._budget != saved[1]:
                self.memory_budget = saved[1]
            with self.lock:
                self.autotune, self.algorithms, self.timings = saved[2], saved[3], saved[4]
            self._backend, self.backend_explicit = saved_backend


runtime = Runtime()
