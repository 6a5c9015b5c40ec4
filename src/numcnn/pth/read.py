"""Reading a torch.save file: its archive, the opcode scan, the allow-list unpickler, the tensors."""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib

import numpy as np

from ..autograd.tensor import Tensor
from .allowlist import _GLOBALS, _hashable, _plain, _Storage, _StorageType, _TorchDtype, _View
from .formats import LEGACY_MAGIC, MAX_DEPTH, SAFE_OPCODES, PthError, _np_dtype

# ------------------------------------------------------------------------------------------------ the archive


class _Archive:
    """The records of a torch.save zip, each checked to be stored (uncompressed) and to lie inside the file."""

    def __init__(self, f, size: int):
        self.f, self.size = f, size
        try:
            infos = zipfile.ZipFile(f).infolist()
        except Exception as e:  # zipfile raises many kinds (BadZipFile, ValueError, struct.error...) on bad bytes
            raise PthError(f"not a PyTorch checkpoint: not a zip archive as torch.save writes ({type(e).__name__}: "
                           f"{e})") from None
        pickles = [i.filename for i in infos if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise PthError(f"expected one <archive>/data.pkl record as torch.save writes, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        self.records = {i.filename[len(prefix):]: i for i in infos if i.filename.startswith(prefix)}
        if len(self.records) != sum(i.filename.startswith(prefix) for i in infos):
            raise PthError("the archive holds two records of the same name")
        byteorder = self.read("byteorder").decode("ascii", "replace") if "byteorder" in self.records else "little"
        if byteorder not in ("little", "big"):
            raise PthError(f"the byteorder record says {byteorder!r:.20}, not 'little' or 'big'")
        self.byteorder = byteorder

    def span(self, name: str) -> tuple[int, int]:
        """(offset of the record's bytes in the file, their length), after checking the entry and its header."""
        info = self.records.get(name)
        if info is None:
            raise PthError(f"the pickle refers to the record {name!r}, which the archive does not hold")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1 or info.compress_size != info.file_size:
            raise PthError(f"record {name!r} is compressed or encrypted (method {info.compress_type}); "
                           "torch.save stores records uncompressed")
        self.f.seek(info.header_offset)
        head = self.f.read(30)
        if len(head) < 30 or head[:4] != b"PK\x03\x04":
            raise PthError(f"record {name!r}: no local zip header at offset {info.header_offset}")
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        if self.f.read(name_len) != info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437"):
            raise PthError(f"record {name!r}: its local zip header names another file")
        start = info.header_offset + 30 + name_len + extra_len
        if start + info.file_size > self.size:
            raise PthError(f"record {name!r} declares {info.file_size} bytes at offset {start}, but the file "
                           f"has {self.size} bytes")
        return start, info.file_size

    def read(self, name: str) -> bytearray:
        """The record's bytes (at most the file's size), checked against the CRC in the zip directory."""
        start, n = self.span(name)
        buf = bytearray(n)
        self.f.seek(start)
        if self.f.readinto(buf) != n or zlib.crc32(buf) != self.records[name].CRC:
            raise PthError(f"record {name!r} is truncated or corrupt (its CRC does not match)")
        return buf


# ------------------------------------------------------------------------------------------------ the unpickler


def _allowed(module: str, name: str):
    """The stand-in for the global ``module.name``, or a refusal naming it (by Python 3's name: protocol 2 says
    ``__builtin__`` for ``builtins``)."""
    found = _GLOBALS.get((module, name))
    if found is None:
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
        raise PthError(f"refusing to load: the pickle asks for {module}.{name}, which is not a tensor, a dtype or a "
                       "container (numcnn loads only weights, never code)")
    return found


def _scan(raw: bytes) -> None:
    """Refuse globals outside the allow-list, opcodes outside ``SAFE_OPCODES`` and memo indices no real pickle
    has (the C unpickler would size its memo to a forged index), before anything is unpickled.
    ``pickletools.genops`` only parses, it never builds."""
    try:
        for count, (op, arg, pos) in enumerate(pickletools.genops(io.BytesIO(raw))):
            if op.name == "GLOBAL":
                _allowed(*arg.split(" ", 1))
            if op.name not in SAFE_OPCODES:
                raise PthError(f"data.pkl uses the pickle opcode {op.name} (at byte {pos}), which torch.save never "
                               "writes")
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET") and int(arg) > count:
                raise PthError(f"data.pkl uses memo slot {arg} after {count} opcodes (at byte {pos})")
    except PthError:
        raise
    except Exception as e:  # genops raises ValueError on truncated or unknown opcodes
        raise PthError(f"data.pkl is not a valid pickle ({type(e).__name__}: {e})") from None


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals in ``_GLOBALS``; persistent ids become storages checked against the archive."""

    def __init__(self, raw: bytes, archive: _Archive, map_location):
        super().__init__(io.BytesIO(raw))
        self.archive, self.map_location, self.storages = archive, map_location, {}

    def find_class(self, module: str, name: str):
        return _allowed(module, name)

    def persistent_load(self, pid) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[3], str) and type(pid[4]) is int and pid[4] >= 0):
            raise PthError(f"data.pkl has the persistent id {pid!r:.100}, not ('storage', type, key, device, numel)")
        _, kind, key, location, numel = pid
        nbytes = numel * (2 if kind.code is None else np.dtype(kind.code).itemsize)  # bfloat16: refused when used
        _, held = self.archive.span(f"data/{key}")
        if nbytes != held:
            raise PthError(f"storage '{key}' is declared as {numel} elements of {kind.name} ({nbytes} bytes), but "
                           f"its record holds {held} bytes")
        seen = self.storages.get(key)
        if seen is None:
            seen = self.storages[key] = _Storage(key, kind, numel)
            self._map(seen, location)  # once per storage, as torch.load calls map_location
        if seen.kind is not kind or seen.numel != numel:
            raise PthError(f"storage '{key}' is declared twice with different types or sizes")
        return seen

    def _map(self, storage: _Storage, location: str) -> None:
        """Apply a callable ``map_location`` (``lambda storage, loc: storage`` keeps tensors where they are)."""
        if callable(self.map_location) and not isinstance(self.map_location, (str, dict)):
            if self.map_location(storage, location) is not storage:
                raise PthError("map_location(storage, location) must return the storage it was given: numcnn keeps "
                               "every tensor on the CPU")


# ------------------------------------------------------------------------------------------------ tensors


class _Builder:
    """Turns the unpickled placeholders into Tensors over the storages' bytes, walking containers once each."""

    def __init__(self, archive: _Archive, path: str, mmap: bool):
        self.archive, self.mapped = archive, np.memmap(path, mode="c") if mmap and archive.size else None
        self.flat: dict[tuple[str, str], np.ndarray] = {}
        self.done: dict[int, object] = {}
        self.busy: set[int] = set()

    def storage(self, storage: _Storage, dtype: np.dtype) -> np.ndarray:
        """The storage's elements as a flat array of ``dtype`` (read once, shared by every view of it)."""
        cached = self.flat.get((storage.key, dtype.str))
        if cached is None:
            name = f"data/{storage.key}"
            if self.mapped is not None:
                start, n = self.archive.span(name)
                raw = self.mapped[start : start + n]
            else:
                raw = np.frombuffer(self.archive.read(name), np.uint8)
            order = "<" if self.archive.byteorder == "little" else ">"
            cached = raw.view(dtype.newbyteorder(order)).astype(dtype, copy=False)
            self.flat[storage.key, dtype.str] = cached
        return cached

    def tensor(self, v: _View) -> Tensor:
        flat = self.storage(v.storage, v.dtype)
        if math.prod(v.size) == 0:
            arr = np.zeros(v.size, v.dtype)
        else:
            strides = tuple(s * v.dtype.itemsize for s in v.stride)
            arr = np.lib.stride_tricks.as_strided(flat[v.offset :], v.size, strides)
        if v.negate:
            arr = -arr
        if v.conjugate:
            arr = np.conj(arr)
        return Tensor._make(arr, v.requires_grad)

    def build(self, obj, depth: int = 0):
        """``obj`` with every placeholder replaced; containers are rebuilt in place (same identity, as pickled)."""
        if isinstance(obj, (str, bytes, bytearray, int, float, complex, type(None))):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if depth > MAX_DEPTH or key in self.busy:
            raise PthError(f"the object is nested deeper than {MAX_DEPTH} levels or contains itself")
        self.busy.add(key)
        result = self._build(obj, depth + 1)
        self.busy.discard(key)
        self.done[key] = result
        return result

    def _build(self, obj, depth: int):
        if isinstance(obj, _View):
            return self.tensor(obj)
        if isinstance(obj, _TorchDtype):
            return _np_dtype(obj.code, f"the value torch.{obj.name}")
        if isinstance(obj, dict):
            for k in obj:
                if not _plain(k):
                    raise PthError(f"a dict has a key of type {type(k).__name__}")
                obj[k] = self.build(obj[k], depth)
            for k, v in getattr(obj, "__dict__", {}).items():  # a state_dict's _metadata (set by BUILD)
                obj.__dict__[k] = self.build(v, depth)
            return obj
        if isinstance(obj, list):
            obj[:] = [self.build(v, depth) for v in obj]
            return obj
        if isinstance(obj, tuple):
            return tuple(self.build(v, depth) for v in obj)
        if isinstance(obj, (set, frozenset)):
            return _hashable(obj)  # (sets made by the EMPTY_SET and ADDITEMS opcodes are not checked before)
        raise PthError(f"the pickle holds a {type(obj).__name__} outside a tensor")  # a bare storage or type


def is_pth(path: str | os.PathLike) -> bool:
    """Whether the file starts like a zip archive or a legacy torch.save file (read 16 bytes)."""
    with open(path, "rb") as f:
        head = f.read(len(LEGACY_MAGIC))
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or head == LEGACY_MAGIC


def load_pth(path: str | os.PathLike, map_location=None, mmap: bool = False):
    """The object ``torch.save`` stored in ``path``, with tensors as Tensors (views of one storage share memory).

    Raises ValueError, one line naming the file, for anything but a well-formed zip-format file whose pickle uses
    only the allow-list: a global outside it (``os.system``...), a storage larger than its record, a view outside
    its storage, a compressed record, a truncated or corrupt file, nesting deeper than 64 levels."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if f.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC:
                raise PthError("this is torch.save's legacy format (PyTorch < 1.6), which numcnn does not read; "
                               "re-save it with torch.save in PyTorch >= 1.6")
            archive = _Archive(f, size)
            raw = bytes(archive.read("data.pkl"))
            _scan(raw)
            try:
                obj = _Unpickler(raw, archive, map_location).load()
            except PthError:
                raise
            except Exception as e:  # the C unpickler's many errors on malformed opcodes and arguments
                raise PthError(f"data.pkl is not a valid pickle of weights ({type(e).__name__}: {e})") from None
            return _Builder(archive, path, mmap).build(obj)
    except PthError as e:
        raise ValueError(f"load(): {path}: {e}") from None


def nonfinite(obj, prefix: str = "") -> list[str]:
    """The dotted names of the float tensors inside ``obj`` (nested dicts, lists, tuples) holding NaN or Inf."""
    if isinstance(obj, Tensor):
        arr = obj.numpy()
        return [prefix] if arr.dtype.kind in "fc" and not np.isfinite(arr).all() else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return [name for k, v in items for name in nonfinite(v, f"{prefix}.{k}" if prefix else str(k))]


