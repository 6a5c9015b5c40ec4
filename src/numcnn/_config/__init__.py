"""Process-wide settings: default dtype and the seeded random generator (threads: numcnn.kernels.runtime).

Everything random in numcnn (initialisation, dropout, ``randn``, shuffling when no generator is given) draws
from one :class:`numpy.random.Generator`; :func:`manual_seed` replaces it, so the same seed gives the same run,
bit for bit.
"""

from __future__ import annotations

import numpy as np

from .malloc import malloc_tuned, tune_malloc, tune_malloc_from_env  # noqa: F401 - re-exported

DEFAULT_DTYPE = np.dtype(np.float32)

_state = {"generator": np.random.default_rng(0)}


def manual_seed(seed: int) -> np.random.Generator:
    """Seed numcnn's global random generator (as ``torch.manual_seed``) and return it."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    _state["generator"] = np.random.default_rng(int(seed))
    return _state["generator"]


def default_generator() -> np.random.Generator:
    """The global generator that random ops use when none is passed."""
    return _state["generator"]


def get_generator(generator: np.random.Generator | None = None) -> np.random.Generator:
    return default_generator() if generator is None else generator
