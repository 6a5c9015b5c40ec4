"""Saving and loading arrays: safetensors files (no pickle, so loading a file never runs code), written
atomically so that a crash never leaves a half-written file where a good one was."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ._io import atomic_write
from .autograd.tensor import Tensor

__all__ = ["atomic_write", "load", "save"]


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


# What a safetensors header may declare and NumPy can hold (bfloat16 and the float8 types cannot be).
_NUMPY_DTYPES = ("BOOL", "U8", "I8", "U16", "I16", "F16", "U32", "I32", "F32", "U64", "I64", "F64")
_MAX_HEADER = 100 * 2**20  # the safetensors format's own limit on the JSON header


def _read_safetensors(path: str) -> bytes:
    """The file's bytes, after checking the header length and the declared dtypes (a clear error for each, before
    the payload is read; the payload's offsets and shapes are then checked by the safetensors parser, which
    never allocates more than the file holds)."""
    import json

    size = os.path.getsize(path)
    bad = f"load(): {path} is not a valid safetensors file"
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{bad}: {size} bytes, too short for the 8-byte header length")
        n = int.from_bytes(head, "little")
        if n > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{bad}: the header claims {n} bytes, but the file has {size - 8} after the length "
                             f"(and headers are limited to {_MAX_HEADER})")
        header = f.read(n)
        try:
            meta = json.loads(header)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"{bad}: the header is not valid JSON ({type(e).__name__})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{bad}: the header is not a JSON object")
        for name, info in meta.items():
            dtype = info.get("dtype") if isinstance(info, dict) else None
            if name != "__metadata__" and dtype not in _NUMPY_DTYPES:
                raise ValueError(f"{bad}: tensor {name!r} has dtype {dtype!r}; numcnn reads "
                                 f"{', '.join(_NUMPY_DTYPES)}")
        return head + header + f.read()


def load(path: str | os.PathLike, *, check_finite: bool = False) -> dict[str, Tensor]:
    """Load a safetensors file saved by :func:`save` (or by PyTorch's safetensors) as ``{name: Tensor}``.

    Raises ValueError naming the file for anything that is not a well-formed safetensors file (truncated, forged
    header length or offsets, dtypes NumPy cannot hold) and, with ``check_finite``, for float tensors holding
    NaN or Inf. Loading never runs code (no pickle) and never allocates more than the file's size."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    path = os.fspath(path)
    raw = _read_safetensors(path)
    try:
        arrays = st_load(raw)
    except (SafetensorError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"load(): {path} is not a valid safetensors file ({e})") from None
    if check_finite:
        bad = [k for k, v in arrays.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise ValueError(f"load(): {path}: tensor(s) {', '.join(bad)} hold NaN or Inf values")
    return {k: Tensor._make(v, False) for k, v in arrays.items()}


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata stored in a safetensors file's header."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="numpy") as f:
        return dict(f.metadata() or {})
