"""Read data pickles (CIFAR's Python version) without running code from the file.

A pickle is a small program: its GLOBAL/STACK_GLOBAL opcodes name any importable callable and REDUCE calls it, so
``pickle.load`` on a hostile file runs whatever it names (``os.system``...). ``load_data_pickle`` runs the
standard Unpickler with ``find_class`` replaced: the only globals a file may name are NumPy's array
reconstruction (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) and ``_codecs.encode`` (how
protocol 2 stores bytes), and those names
resolve to numcnn's own stand-ins, which build a plain numeric array from the raw bytes the file holds (never
an object array). Everything else a file may contain is data: dicts, lists, tuples, str, bytes, ints, floats,
bools, None. Any other global is refused (``pickle.UnpicklingError`` naming it) before anything is called.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
from typing import Any

import numpy as np

__all__ = ["load_data_pickle"]

_NUMERIC_KINDS = "biuf"
_MAX_BYTES = 1 << 32  # no array in a data pickle may claim more than 4 GiB


class _DType:
    """Stand-in for ``numpy.dtype(name, align, copy)``: a numeric dtype, byte order set by BUILD."""

    def __init__(self, name: Any, align: Any = 0, copy: Any = 1) -> None:
        name = name.decode("latin1") if isinstance(name, bytes) else name
        try:
            dtype = np.dtype(str(name))
        except TypeError as err:
            raise pickle.UnpicklingError(f"array dtype {name!r} is not a NumPy type") from err
        if dtype.kind not in _NUMERIC_KINDS:
            raise pickle.UnpicklingError(f"array dtype {dtype} refused: only numeric arrays are read from data files")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else "|"
        order = order.decode("latin1") if isinstance(order, bytes) else order
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)


class _Array:
    """Stand-in for the object ``numpy.core.multiarray._reconstruct`` makes; BUILD gives it shape, dtype, bytes."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("an array's state must be (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError("an array's dtype must be a numpy.dtype")
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise pickle.UnpicklingError(f"an array's shape must be a tuple of sizes, got {shape!r}")
        raw = raw.encode("latin1") if isinstance(raw, str) else raw  # Python 2 pickles read with latin1
        if not isinstance(raw, bytes | bytearray):
            raise pickle.UnpicklingError("an array's data must be bytes")
        nbytes = math.prod(shape) * dtype.dtype.itemsize
        if nbytes > _MAX_BYTES or len(raw) != nbytes:
            raise pickle.UnpicklingError(f"array of shape {shape} and dtype {dtype.dtype} needs {nbytes} bytes, "
                                         f"the file holds {len(raw)}")
        a = np.frombuffer(bytes(raw), dtype=dtype.dtype)
        self.array = (a.reshape(shape[::-1]).T if fortran else a.reshape(shape)).copy()


def _reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _Array:
    if cls is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct may only build numpy.ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    """Stand-in for ``numpy._core.numeric._frombuffer`` (how protocol 5 stores arrays)."""
    out = _Array()
    fortran = order in ("F", b"F")
    raw = buf.raw().tobytes() if isinstance(buf, pickle.PickleBuffer) else buf
    out.__setstate__((1, tuple(shape) if isinstance(shape, tuple | list) else shape, dtype, fortran, raw))
    return out


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode``, which protocol-2 pickles written by Python 3 use for every bytes object."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode may only turn a latin1 str into bytes")
    return text.encode("latin1")


_NDARRAY = object()  # what the name numpy.ndarray resolves to: only a token for _reconstruct
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DType,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("_codecs", "encode"): _encode,
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a data file may hold only dicts, lists, numbers, strings, bytes "
                f"and numeric NumPy arrays") from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refused a persistent id: a data file may not reference outside objects")


def _finish(obj: Any) -> Any:
    """Replace the stand-ins by their arrays, recursively; anything that is not plain data is refused."""
    if isinstance(obj, _Array):
        if obj.array is None:
            raise pickle.UnpicklingError("an array was never given its data")
        return obj.array
    if isinstance(obj, dict):
        return {_finish(k): _finish(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_finish(v) for v in obj)
    if obj is None or isinstance(obj, str | bytes | bytearray | int | float | bool):
        return obj
    raise pickle.UnpicklingError(f"refused a {type(obj).__name__} object: not plain data")


_MEMO_OPCODES = ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET")


def _check_memo(data: bytes) -> None:
    """Refuse memo indices no real pickle has: CPython's unpickler sizes its memo to the largest index it is given,
    so a 12-byte pickle naming slot 2**24 would allocate hundreds of MB. ``pickletools.genops`` only parses."""
    for count, (op, arg, pos) in enumerate(pickletools.genops(io.BytesIO(data))):
        if op.name in _MEMO_OPCODES and int(arg) > count:
            raise pickle.UnpicklingError(f"memo slot {arg} used after {count} opcodes (at byte {pos})")


def load_data_pickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (the bytes of ``source``, named in errors) under the rules of the module docstring.
    Byte strings of Python 2 pickles are decoded as latin1, as torchvision does."""
    try:
        _check_memo(data)
        return _finish(_DataUnpickler(io.BytesIO(data), encoding="latin1").load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as err:
        raise ValueError(f"{source}: not a data pickle numcnn will read ({type(err).__name__}: {err})") from None
