"""Saving and loading weights: safetensors files (no pickle, so loading a file never runs code), and PyTorch's
``.pt``/``.pth`` files (``torch.save``'s zip format, read through an allow-list unpickler that never runs code:
:mod:`numcnn.pth`), written atomically so that a crash never leaves a half-written file where a good one was.

``save`` picks the format by the file's suffix (``.pt``, ``.pth``, ``.tar``: PyTorch's; anything else:
safetensors); ``load`` by the file's first bytes, so a PyTorch file loads whatever its name."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ._io import atomic_write
from .autograd.tensor import Tensor
from .pth import is_pth, load_pth, nonfinite, save_pth

__all__ = ["atomic_write", "load", "save"]


#: Suffixes that ``save`` writes in PyTorch's format (``.tar``: the PyTorch tutorials' name for checkpoints).
PTH_SUFFIXES = (".pt", ".pth", ".tar")


def save(state_dict, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Save a flat ``{name: Tensor or ndarray}`` mapping (e.g. ``model.state_dict()``) as safetensors, or, when
    ``path`` ends in ``.pt``/``.pth``/``.tar``, any checkpoint (a state_dict, or a dict of state_dicts, numbers
    and strings, as PyTorch tutorials save) in ``torch.save``'s format, which ``torch.load`` reads."""
    from safetensors.numpy import save as st_save

    if os.fspath(path).lower().endswith(PTH_SUFFIXES):
        if metadata:
            raise TypeError(f"save(): metadata is a safetensors header; {os.fspath(path)} is a PyTorch file "
                            "(put the values in the saved dict instead)")
        save_pth(state_dict, path)
        return
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save(): expected a mapping of names to tensors, got {type(state_dict).__name__}")
    arrays = {}
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise TypeError(f"save(): keys must be str, got {k!r}")
        arr = v.array if isinstance(v, Tensor) else v
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"save(): value of {k!r} must be a Tensor or ndarray, got {type(v).__name__} (a "
                            "safetensors file is flat; save nested checkpoints to a .pt or .pth file)")
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


def _check_load_options(map_location, weights_only, mmap) -> None:
    """PyTorch's ``torch.load`` keywords, as far as they have a meaning here (numcnn runs on the CPU only)."""
    if weights_only is not None and not isinstance(weights_only, bool):
        raise TypeError(f"load(): weights_only must be True, False or None, got {weights_only!r}")
    if weights_only is False:
        raise ValueError("load(): weights_only=False would let the file run code while it is unpickled; numcnn "
                         "never runs pickled code and reads tensors, numbers, strings and containers only, as "
                         "weights_only=True does: leave it out or pass weights_only=True")
    if mmap is not None and not isinstance(mmap, bool):
        raise TypeError(f"load(): mmap must be True, False or None, got {mmap!r}")
    targets = map_location.values() if isinstance(map_location, Mapping) else [map_location]
    for target in targets:
        if target is None or (callable(target) and not isinstance(target, str)):
            continue  # a callable is checked per storage: it must return the storage it is given
        name = target if isinstance(target, str) else getattr(target, "type", None)
        if not isinstance(name, str):
            raise TypeError(f"load(): map_location must be a device name, a device, a dict or a function, got "
                            f"{type(target).__name__}")
        if name.split(":")[0] != "cpu":
            raise ValueError(f"load(): map_location={str(target)!r}: numcnn runs on the CPU only, and loads every "
                             "tensor there; pass map_location='cpu' or leave it out")


def load(path: str | os.PathLike, map_location=None, *, weights_only: bool | None = None, mmap: bool | None = None,
         check_finite: bool = False):
    """Load a safetensors file saved by :func:`save` (or by PyTorch's safetensors) as ``{name: Tensor}``, or a
    file ``torch.save`` wrote (``.pt``/``.pth``, recognised by its bytes) as the object it holds, tensors as Tensors.

    ``map_location``, ``weights_only`` and ``mmap`` are ``torch.load``'s: ``map_location`` may name the CPU
    (``'cpu'``, a device whose type is ``'cpu'``, a dict mapping locations to those, or ``lambda storage, loc:
    storage``); tensors saved from a GPU load on the CPU like with ``map_location='cpu'``, and naming ``'cuda'`` or
    ``'mps'`` raises ValueError, as PyTorch does on a machine without one. ``weights_only=False`` is refused: numcnn
    never runs pickled code. ``mmap=True`` maps a PyTorch file's storages copy-on-write instead of reading them
    (safetensors files are read whole either way).

    Raises ValueError naming the file for anything that is not a well-formed file (truncated, forged header length
    or offsets, a pickle asking for a global outside the allow-list, storages or views larger than the file, dtypes
    NumPy cannot hold) and, with ``check_finite``, for float tensors holding NaN or Inf. Loading never runs code and
    never allocates more than the file's size."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    _check_load_options(map_location, weights_only, mmap)
    path = os.fspath(path)
    if path.lower().endswith(PTH_SUFFIXES) or is_pth(path):
        obj = load_pth(path, map_location, mmap=bool(mmap))
        bad = nonfinite(obj) if check_finite else []
        if bad:
            raise ValueError(f"load(): {path}: tensor(s) {', '.join(bad)} hold NaN or Inf values")
        return obj
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
