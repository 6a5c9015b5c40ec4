"""Compiled kernels: the textbook's loops, compiled by Numba the first time they run.

A compiled kernel is written as plain loops over arrays and declared with :func:`kernel`; it takes the range of the
independent items (planes, channels) it should do, and the caller shares ranges out over numcnn's kernel threads
exactly as for the NumPy kernels (``parallel.run``)::

    @kernel
    def relu_rows(x, y, i0, i1):
        for i in range(i0, i1):
            for j in range(x.shape[1]):
                y[i, j] = max(x[i, j], 0)

    parallel.run(lambda b: relu_rows(x, y, *b), parallel.cache_blocks(len(x), x[0].nbytes), blas=False)

Compiled code releases the GIL (``nogil``), so those threads run it at once. Numba's own thread pool is not used:
one pool for every kernel means threads never oversubscribe the cores or spin while another library's threads
need them, a forked child (a DataLoader worker) can run any kernel, and results stay independent of the thread
count by the same rule as everywhere in numcnn: work is cut by the shapes, each range writes its own outputs, and
sums run in a fixed order inside a range.

Nothing is compiled when numcnn is imported: Numba itself is imported, and each kernel compiled (per dtype and
layout of its arguments), on the kernel's first call, and the compiled code is cached on disk (``cache=True``:
next to the source, or in the user's cache folder when the installation is read-only), so later processes load it
in milliseconds. :func:`compile_report` says which kernels were compiled and how long each took.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable

from .runtime import runtime

__all__ = ["available", "compile_report", "kernel", "use_compiled"]

_state: dict = {"numba": None, "warned": False}
_compiled: dict[str, float] = {}  # "kernel(types)" -> seconds spent compiling (or loading from the cache)


def _numba():
    """The numba module, imported on first use; False when it cannot be (said once, as a warning)."""
    if _state["numba"] is None:
        try:
            import numba

            _state["numba"] = numba
        except Exception as e:  # an unsupported Python or NumPy: ImportError, or an error while numba loads
            _state["numba"] = False
            if not _state["warned"]:
                _state["warned"] = True
                warnings.warn(f"numcnn: the compiled kernels are off ({type(e).__name__}: {e}); running the NumPy "
                              "kernels (NUMCNN_KERNELS=numpy silences this)", RuntimeWarning, stacklevel=3)
    return _state["numba"]


def available() -> bool:
    """Whether compiled kernels can run here (imports Numba the first time)."""
    return bool(_numba())


def use_compiled() -> bool:
    """Whether kernels should run their compiled version now: ``runtime.backend`` asks for it and Numba works."""
    return runtime.backend == "numba" and available()


class Kernel:
    """A function compiled on its first call; called like the function."""

    def __init__(self, fn: Callable, fastmath=None):
        self.fn, self.name = fn, fn.__name__
        self.fastmath = fastmath  # Numba's fastmath flags, e.g. {"contract"}: a*b + c as one FMA (deterministic)
        self._dispatcher = None
        self._lock = threading.Lock()  # two threads making the first call compile once

    def _compile(self):
        with self._lock:
            if self._dispatcher is None:
                numba = _numba()
                if not numba:
                    raise RuntimeError(f"{self.name}: the compiled kernels are not available here")
                options = {} if self.fastmath is None else {"fastmath": self.fastmath}
                self._dispatcher = numba.njit(cache=True, nogil=True, error_model="numpy", **options)(self.fn)
        return self._dispatcher

    def __call__(self, *args):
        dispatcher = self._dispatcher or self._compile()
        before = len(dispatcher.overloads)  # (a dict: cheaper than .signatures, which builds a list per call)
        t0 = time.perf_counter()
        out = dispatcher(*args)
        if len(dispatcher.overloads) != before:  # this call compiled (or loaded from the cache) a new signature
            _compiled[f"{self.name}{dispatcher.signatures[-1]}"] = time.perf_counter() - t0
        return out


def kernel(fn: Callable | None = None, *, fastmath=None):
    """Declare a compiled kernel (see the module docstring): ``@kernel``, or ``@kernel(fastmath={"contract"})`` to
    pass Numba's fastmath flags (``"contract"`` fuses a*b + c into one FMA: the same bits on every call and thread
    count; ``"reassoc"`` lets a sum be split into vector lanes: fixed by the compiled code, so also the same bits
    whatever the thread count, but not the textbook's left-to-right order)."""
    if fn is None:
        return lambda f: Kernel(f, fastmath)
    return Kernel(fn, fastmath)


def compile_report() -> dict[str, float]:
    """{"kernel(argument types)": seconds} for every compiled signature this process compiled or loaded so far
    (including the first run of the kernel, which the compile dominates)."""
    return dict(_compiled)
