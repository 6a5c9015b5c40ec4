"""Process-wide settings: default dtype and the seeded random generator (threads: numcnn.kernels.runtime).

Everything random in numcnn (initialisation, dropout, ``randn``, shuffling when no generator is given) draws
from one :class:`numpy.random.Generator`; :func:`manual_seed` replaces it, so the same seed gives the same run,
bit for bit.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .malloc import malloc_tuned, tune_malloc, tune_malloc_from_env  # noqa: F401 - re-exported

DEFAULT_DTYPE = np.dtype(np.float32)

_state = {"generator": np.random.default_rng(0), "seed": 0}
_worker = threading.local()  # a DataLoader worker thread's own generator and seed (see enter_worker_thread)


def check_seed(who: str, seed: Any) -> int:
    """``seed`` as a non-negative int as torch takes it: -2**63 .. 2**64-1, negative ones counted from 2**64."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"{who}: expected an int seed, got {type(seed).__name__}")
    seed = int(seed)
    if not -2**63 <= seed < 2**64:
        raise RuntimeError(f"{who}: seed must be within the range [-0x8000_0000_0000_0000, "
                           f"0xffff_ffff_ffff_ffff], got {seed}")
    return seed % 2**64


def manual_seed(seed: int) -> np.random.Generator:
    """Seed numcnn's global random generator (as ``torch.manual_seed``) and return it. In a DataLoader worker
    thread this seeds that worker's own generator (a torch worker is a process with its own global generator)."""
    seed = check_seed("manual_seed", seed)
    _set(np.random.default_rng(seed), seed)
    return default_generator()


def _set(generator: np.random.Generator, seed: int) -> None:
    state = _worker.__dict__ if getattr(_worker, "generator", None) is not None else _state
    state["generator"], state["seed"] = generator, seed


def initial_seed() -> int:
    """The seed of numcnn's global generator (``torch.initial_seed``): the last :func:`manual_seed` (0 at start);
    inside a DataLoader worker, that worker's seed (``get_worker_info().seed``), as in PyTorch."""
    return getattr(_worker, "seed", None) if getattr(_worker, "generator", None) is not None else _state["seed"]


def enter_worker_thread(seed: int, generator: np.random.Generator) -> None:
    """Called by a DataLoader worker thread as it starts: in this thread numcnn's global generator is
    ``generator`` (the worker's, seeded with ``seed``), so random draws in a dataset never race with the main
    thread's and :func:`initial_seed` is the worker's seed, as in a torch worker process."""
    _worker.generator, _worker.seed = generator, seed


def default_generator() -> np.random.Generator:
    """The global generator that random ops use when none is passed (a worker thread's own, in one)."""
    generator = getattr(_worker, "generator", None)
    return _state["generator"] if generator is None else generator


def set_default_generator(generator: np.random.Generator) -> None:
    """Make ``generator`` the global one (``numcnn.set_rng_state``); the initial seed stays as it was."""
    _set(generator, initial_seed())


def numpy_generator(who: str, generator: Any) -> np.random.Generator | None:
    """``generator`` as a ``numpy.random.Generator`` (or None): a NumPy one, or an object holding one in
    ``.generator`` (``numcnn.Generator``, torch's form); anything else is a one-line TypeError."""
    if generator is None or isinstance(generator, np.random.Generator):
        return generator
    inner = getattr(generator, "generator", None)
    if isinstance(inner, np.random.Generator):
        return inner
    raise TypeError(f"{who}: generator must be a numcnn.Generator or a numpy.random.Generator (e.g. "
                    f"np.random.default_rng(0)), got {type(generator).__name__}")


def get_generator(generator: Any = None, who: str = "generator") -> np.random.Generator:
    """The generator a random op draws from: ``generator`` (see :func:`numpy_generator`) or the global one."""
    return default_generator() if generator is None else numpy_generator(who, generator)
