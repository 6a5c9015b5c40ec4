"""Random generators as PyTorch names them: ``numcnn.Generator``, ``numcnn.initial_seed``, ``numcnn.seed``,
``numcnn.get_rng_state`` / ``set_rng_state``.

A ``numcnn.Generator`` holds a ``numpy.random.Generator`` (PCG64) in ``.generator``; everything that takes
``generator=`` (``randn``, ``randperm``, ``DataLoader``, ``random_split``, the samplers, ``nn.init``) draws from it.
Same seed, same numbers, bit for bit, but not PyTorch's numbers: torch's generator is a Mersenne Twister, numcnn's
is NumPy's PCG64. A state (``get_state()``) is a uint8 Tensor of 40 bytes: PCG64's 128-bit state and increment and
its buffered 32-bit half, little-endian.
"""

from __future__ import annotations

import os

import numpy as np

from .. import _config
from .device import device as _device
from .tensor import Tensor

__all__ = ["Generator", "get_rng_state", "initial_seed", "seed", "set_rng_state"]

#: What an unseeded ``torch.Generator()`` starts from (PyTorch's default_rng_seed_val).
DEFAULT_SEED = 67280421310721
STATE_BYTES = 40


class Generator:
    """``numcnn.Generator(device="cpu")``: a seeded stream of random numbers (``torch.Generator``)."""

    def __init__(self, device="cpu"):
        self.device = _device(device)
        if self.device.type != "cpu":
            raise RuntimeError(f"Generator: numcnn computes on the CPU only, got device {str(self.device)!r}")
        self.manual_seed(DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restart from ``seed``; returns the generator (``torch.Generator().manual_seed(42)`` is common)."""
        self._seed = _config.check_seed("Generator.manual_seed", seed)
        self.generator = np.random.default_rng(self._seed)
        return self

    def seed(self) -> int:
        """Restart from a seed drawn from the operating system; returns it."""
        self.manual_seed(int.from_bytes(os.urandom(8), "little"))
        return self._seed

    def initial_seed(self) -> int:
        """The seed this generator last started from."""
        return self._seed

    def get_state(self) -> Tensor:
        """The generator's state as a uint8 Tensor (see the module docstring)."""
        return Tensor._make(encode_state(self.generator), False)

    def set_state(self, new_state) -> Generator:
        """Continue from a state that :meth:`get_state` returned."""
        self.generator = decode_state("Generator.set_state", new_state)
        return self

    def __repr__(self) -> str:
        return f"<numcnn.Generator object at {id(self):#x}>"


def encode_state(generator: np.random.Generator) -> np.ndarray:
    """PCG64's state in 40 bytes: state (16), increment (16), has_uint32 (4), uinteger (4), little-endian."""
    state = generator.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise TypeError(f"get_state: only PCG64 generators have a byte state, this one is {state['bit_generator']}")
    raw = (state["state"]["state"].to_bytes(16, "little") + state["state"]["inc"].to_bytes(16, "little")
           + state["has_uint32"].to_bytes(4, "little") + state["uinteger"].to_bytes(4, "little"))
    return np.frombuffer(raw, dtype=np.uint8).copy()


def decode_state(who: str, new_state) -> np.random.Generator:
    """The generator that :func:`encode_state` described (refusing anything that is not such a state)."""
    arr = new_state.array if isinstance(new_state, Tensor) else new_state
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != (STATE_BYTES,):
        got = f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
        raise TypeError(f"{who}: expected the uint8 Tensor of {STATE_BYTES} bytes that get_state returns, got {got}")
    raw = arr.tobytes()
    has_uint32 = int.from_bytes(raw[32:36], "little")
    if has_uint32 not in (0, 1) or not int.from_bytes(raw[16:32], "little") & 1:
        raise ValueError(f"{who}: this is not a state that get_state returned (PCG64's increment is odd)")
    generator = np.random.default_rng()
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(raw[:16], "little"), "inc": int.from_bytes(raw[16:32], "little")},
        "has_uint32": has_uint32, "uinteger": int.from_bytes(raw[36:40], "little"),
    }
    return generator


def initial_seed() -> int:
    """The global generator's seed (``torch.initial_seed``); in a DataLoader worker, the worker's seed."""
    return _config.initial_seed()


def seed() -> int:
    """Seed the global generator from the operating system (``torch.seed``); returns the seed."""
    value = int.from_bytes(os.urandom(8), "little")
    _config.manual_seed(value)
    return value


def get_rng_state() -> Tensor:
    """The global generator's state (``torch.get_rng_state``), a uint8 Tensor."""
    return Tensor._make(encode_state(_config.default_generator()), False)


def set_rng_state(new_state) -> None:
    """Continue the global generator from a state :func:`get_rng_state` returned (``torch.set_rng_state``)."""
    _config.set_default_generator(decode_state("set_rng_state", new_state))
