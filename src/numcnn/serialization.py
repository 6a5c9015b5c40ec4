"""Saving and loading arrays: safetensors files (no pickle, so loading a file never runs code), written
atomically so that a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

import numpy as np

from .autograd.tensor import Tensor


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, fsync, then rename over ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state_dict: Mapping, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Save a flat ``{name: Tensor or ndarray}`` mapping (e.g. ``model.state_dict()``) as safetensors."""
    from safetensors.numpy import save as st_save

    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save(): expected a mapping of names to tensors, got {type(state_dict).__name__}")
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"save(): keys must be str, got {k!r}")
        arr = v.data if isinstance(v, Tensor) else v
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"save(): value of {k!r} must be a Tensor or ndarray, got {type(v).__name__}")
        arrays[k] = np.asarray(arr, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
    atomic_write(path, st_save(arrays, metadata=dict(metadata) if metadata else None))


def load(path: str | os.PathLike) -> dict[str, Tensor]:
    """Load a safetensors file saved by :func:`save` (or by PyTorch's safetensors) as ``{name: Tensor}``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        arrays = st_load(raw)
    except (SafetensorError, ValueError, TypeError) as e:
        raise ValueError(f"load(): {path} is not a valid safetensors file ({e})") from None
    return {k: Tensor._make(v, False) for k, v in arrays.items()}


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors file's header."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="numpy") as f:
        return dict(f.metadata() or {})
