"""Writing the zip files torch.load reads (weights_only=True): the same records torch 2.13 writes."""

from __future__ import annotations

import math
import os
import struct
import zipfile
from collections import OrderedDict

import numpy as np

from .._io import atomic_write
from ..autograd.tensor import Tensor
from .allowlist import _plain
from .formats import ALIGNMENT, DTYPES, MAX_DEPTH, STORAGES

# ------------------------------------------------------------------------------------------------ writing

_TORCH_DTYPE = {np.dtype(code): name for name, code in DTYPES.items() if code}  # dtype('<f4') -> 'float32'
_STORAGE = {np.dtype(code): name for name, code in STORAGES.items() if code}  # dtype('<f4') -> 'FloatStorage'


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    body = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return (b"\x8a" + bytes([len(body)]) if len(body) < 256 else b"\x8b" + struct.pack("<I", len(body))) + body


def _str(v: str) -> bytes:
    body = v.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(body)) + body


def _tuple(parts: list[bytes]) -> bytes:
    """A tuple of already pickled items: EMPTY_TUPLE, TUPLE1-3, or MARK ... TUPLE."""
    if len(parts) <= 3:
        return b"".join(parts) + (b")", b"\x85", b"\x86", b"\x87")[len(parts)]
    return b"(" + b"".join(parts) + b"t"


class _Pickler:
    """Pickles a checkpoint (protocol 2) opcode by opcode, as torch.save does: None, bools, ints, floats, complex,
    strings, bytes, dtypes, tuples, lists, sets, dicts, OrderedDicts, and tensors, each a call of
    ``torch._utils._rebuild_tensor_v2`` (``_v3`` for uint16/32/64) on a storage record ``data/<key>``. Written by
    hand because the pickle module would import torch to check the globals it names."""

    def __init__(self):
        self.storages: list[tuple[str, np.ndarray]] = []  # (key, C-contiguous little-endian array)
        self.keys: dict[int, tuple[str, np.ndarray]] = {}  # id(array) -> (key, array): an array is stored once

    def dump(self, obj) -> bytes:
        return b"\x80\x02" + self.save(obj, "the object", 0) + b"."

    def save(self, obj, where: str, depth: int) -> bytes:
        if depth > MAX_DEPTH:
            raise ValueError(f"save(): the object is nested deeper than {MAX_DEPTH} levels or contains itself")
        if obj is None or isinstance(obj, (bool, np.bool_)):
            return {None: b"N", True: b"\x88", False: b"\x89"}[None if obj is None else bool(obj)]
        if isinstance(obj, (int, np.integer)):
            return _int(int(obj))
        if isinstance(obj, (float, np.floating)):
            return b"G" + struct.pack(">d", float(obj))
        if isinstance(obj, (complex, np.complexfloating)):
            real, imag = (b"G" + struct.pack(">d", v) for v in (obj.real, obj.imag))
            return _global("__builtin__", "complex") + real + imag + b"\x86R"
        if isinstance(obj, str):
            return _str(obj)
        if isinstance(obj, bytes):  # protocol 2 has no bytes: _codecs.encode(text, 'latin1'), as pickle writes it
            return _global("_codecs", "encode") + _str(obj.decode("latin1")) + _str("latin1") + b"\x86R"
        if isinstance(obj, (Tensor, np.ndarray)):
            return self.tensor(obj, where)
        if isinstance(obj, np.dtype) or (isinstance(obj, type) and issubclass(obj, np.generic)):
            name = _TORCH_DTYPE.get(np.dtype(obj).newbyteorder("<"))
            if name is None:
                raise TypeError(f"save(): {where} is the dtype {np.dtype(obj)}, which torch has no name for")
            return _global("torch", name)
        return self.container(obj, where, depth + 1)

    def container(self, obj, where: str, depth: int) -> bytes:
        def each(items):
            return [self.save(v, f"{where}[{k!r}]", depth) for k, v in items]

        if isinstance(obj, dict):
            for k in obj:
                if not _plain(k):
                    raise TypeError(f"save(): {where} has a key of type {type(k).__name__}; a .pth file holds keys "
                                    "that are numbers, strings, bytes, None or tuples of them")
            pairs = [self.save(k, where, depth) + v for k, v in zip(obj, each(obj.items()))]
            head = _global("collections", "OrderedDict") + b")R" if isinstance(obj, OrderedDict) else b"}"
            return head + (b"(" + b"".join(pairs) + b"u" if pairs else b"")
        if isinstance(obj, list):
            return b"]" + (b"(" + b"".join(each(enumerate(obj))) + b"e" if obj else b"")
        if isinstance(obj, tuple):
            return _tuple(each(enumerate(obj)))
        if isinstance(obj, (set, frozenset)) and all(_plain(v) for v in obj):
            kind = "set" if isinstance(obj, set) else "frozenset"
            return _global("__builtin__", kind) + self.save(list(obj), where, depth) + b"\x85R"
        raise TypeError(f"save(): {where} is a {type(obj).__name__}; a .pth file holds tensors, numbers, strings, "
                        "bytes, None, dtypes and dicts, lists, tuples and sets of them")

    def tensor(self, value, where: str) -> bytes:
        arr = value.numpy() if isinstance(value, Tensor) else value
        dtype = arr.dtype.newbyteorder("<")
        if dtype not in _TORCH_DTYPE:
            raise TypeError(f"save(): {where} has dtype {arr.dtype}, which torch tensors cannot hold")
        if id(arr) not in self.keys:
            self.keys[id(arr)] = (str(len(self.storages)), arr)  # the array is kept, so its id stays unique
            self.storages.append((str(len(self.storages)), np.asarray(arr, dtype=dtype, order="C")))
        key, _ = self.keys[id(arr)]
        stride = [math.prod(arr.shape[i + 1:]) for i in range(arr.ndim)]
        storage = _STORAGE.get(dtype)
        kind = _global("torch", storage) if storage else _global("torch.storage", "UntypedStorage")
        numel = arr.size if storage else arr.size * dtype.itemsize
        pid = _str("storage") + kind + _str(key) + _str("cpu") + _int(numel)
        args = [b"(" + pid + b"tQ", _int(0), _tuple([_int(n) for n in arr.shape]), _tuple([_int(s) for s in stride]),
                b"\x88" if getattr(value, "requires_grad", False) else b"\x89", _global("collections", "OrderedDict")
                + b")R"]
        if not storage:
            args.append(_global("torch", _TORCH_DTYPE[dtype]))
        return _global("torch._utils", "_rebuild_tensor_v2" if storage else "_rebuild_tensor_v3") + \
            b"(" + b"".join(args) + b"tR"


def _write_record(zf: zipfile.ZipFile, name: str, data) -> None:
    """One stored record whose bytes start at a multiple of ``ALIGNMENT`` in the file (padding in the local
    header's extra field, as torch's writer does), so that ``mmap=True`` gets aligned arrays."""
    view = data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else memoryview(data)
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.file_size = len(view)
    zip64 = info.file_size * 1.05 > zipfile.ZIP64_LIMIT  # zipfile's own rule; it then adds a 20-byte extra field
    header = 30 + len(name.encode()) + (20 if zip64 else 0)
    pad = -(zf.fp.tell() + header + 4) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, view)  # (zipfile decides zip64 by the same rule)


def save_pth(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` (a state_dict, or a checkpoint dict of them and numbers) as ``torch.save`` does, atomically.
    ``torch.load`` (``weights_only=True``, its default) reads it back equal; each tensor gets its own C-contiguous
    storage (the same array twice: one storage), numbers stay Python numbers (NumPy scalars become them)."""
    pickler = _Pickler()
    data = pickler.dump(obj)

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            records = [("data.pkl", data), (".format_version", b"1"), (".storage_alignment", str(ALIGNMENT).encode()),
                       ("byteorder", b"little"), *((f"data/{k}", a) for k, a in pickler.storages), ("version", b"3\n")]
            for name, record in records:
                _write_record(zf, f"archive/{name}", record)

    atomic_write(path, write)

