"""Compiled kernels: the textbook's loops, compiled by Numba the first time they run.

A compiled kernel is written as plain loops over arrays and declared with :func:`kernel`::

    @kernel(parallel=True)
    def relu_rows(x, y):
        for i in prange(x.shape[0]):      # rows shared out over Numba's threads
            for j in range(x.shape[1]):
                y[i, j] = max(x[i, j], 0)

Nothing is compiled when numcnn is imported: Numba itself is imported, and each kernel compiled (per dtype and
layout of its arguments), on the kernel's first call, and the compiled code is cached on disk (``cache=True``:
next to the source, or in the user's cache folder when the installation is read-only), so later processes load it
in milliseconds. :func:`compile_report` says which kernels were compiled and how long each took.

Rules every compiled kernel follows, so that results never depend on the thread count:

- a parallel loop (``prange``) runs over independent outputs (planes, channels, rows): no iteration reads what
  another writes, and no sum crosses iterations of a ``prange`` (Numba would split such a reduction by thread);
- sums inside an iteration run in a fixed order.

Threads: Numba's pool is used with the "workqueue" threading layer (GNU OpenMP's aborts a forked child that runs a
parallel kernel; workqueue does not), sized to ``runtime.threads`` before each launch, and launches hold one lock
(workqueue runs one parallel region at a time: two user threads calling kernels take turns).
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
import warnings
from collections.abc import Callable

from . import parallel
from .runtime import runtime

__all__ = ["available", "compile_report", "installed", "kernel", "prange", "use_compiled"]

_state: dict = {"numba": None, "warned": False}
_launch = threading.Lock()
_compiled: dict[str, float] = {}  # "kernel(types)" -> seconds spent compiling (or loading from the cache)


def installed() -> bool:
    """Whether Numba can be found, without importing it (cheap: used to pick the default backend)."""
    return importlib.util.find_spec("numba") is not None


def _numba():
    """The numba module, imported on first use; False when it cannot be (said once, as a warning)."""
    if _state["numba"] is None:
        try:
            if "NUMBA_THREADING_LAYER" not in os.environ:
                os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
            import numba

            _state["numba"] = numba
            parallel.forget_blas_pools()  # numba loads SciPy, and with it another BLAS: look again
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


def prange(*args):
    """``range`` in Python; inside a compiled kernel Numba replaces it by its parallel range."""
    return range(*args)


class Kernel:
    """A function compiled on its first call; called like the function."""

    def __init__(self, fn: Callable, parallel: bool):
        self.fn, self.parallel, self.name = fn, parallel, fn.__name__
        self._dispatcher = None

    def _compile(self):
        numba = _numba()
        if not numba:
            raise RuntimeError(f"{self.name}: the compiled kernels are not available here")
        fn = self.fn
        if self.parallel:  # the module's prange is Python's range: give the compiled code Numba's
            fn.__globals__["prange"] = numba.prange
        self._dispatcher = numba.njit(cache=True, parallel=self.parallel, nogil=True, error_model="numpy")(fn)
        return self._dispatcher

    def __call__(self, *args):
        dispatcher = self._dispatcher or self._compile()
        before = len(dispatcher.signatures)
        t0 = time.perf_counter()
        if self.parallel:
            numba = _state["numba"]
            with _launch:
                numba.set_num_threads(min(runtime.threads, numba.config.NUMBA_NUM_THREADS))
                out = dispatcher(*args)
        else:
            out = dispatcher(*args)
        if len(dispatcher.signatures) != before:  # this call compiled (or loaded) a new signature
            _compiled[f"{self.name}{dispatcher.signatures[-1]}"] = time.perf_counter() - t0
        return out


def kernel(fn: Callable | None = None, *, parallel: bool = False):
    """Declare a compiled kernel (see the module docstring); ``parallel=True`` lets its ``prange`` loops run on
    Numba's threads."""
    if fn is None:
        return lambda f: Kernel(f, parallel)
    return Kernel(fn, parallel)


def compile_report() -> dict[str, float]:
    """{"kernel(argument types)": seconds} for every compiled signature this process compiled or loaded so far
    (including the first run of the kernel, which the compile dominates)."""
    return dict(_compiled)
