"""PyTorch checkpoint files (``.pt``/``.pth``, the zip format ``torch.save`` writes since PyTorch 1.6) without
PyTorch, read through an allow-list unpickler that never runs code, as ``torch.load`` does with
``weights_only=True``.

A ``torch.save`` file is a zip archive of stored (uncompressed) records under one folder, ``archive/``:

- ``data.pkl``: a pickle (protocol 2) of the saved object. Each tensor in it is a call of
  ``torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks)``,
  whose ``storage`` is a persistent id ``('storage', torch.FloatStorage, '0', 'cpu', numel)`` naming a record;
- ``data/0``, ``data/1``...: the raw bytes of each storage, in the order ``byteorder`` names (``little``);
- ``version``, ``.format_version``, ``.storage_alignment``: bookkeeping (numcnn writes what torch 2.13 writes).

Reading is three steps, and nothing is allocated beyond the file's size before every size is checked:

1. the zip's directory: each record must be stored (a compressed record is refused, so no zip bomb) and lie inside
   the file; ``data.pkl``'s opcodes are scanned (``pickletools``) before it is unpickled;
2. the unpickler resolves only the globals in ``_GLOBALS`` (containers, tensor rebuilders, storage types, dtypes)
   to functions that check their arguments and return inert placeholders: every view is checked against the size
   of its storage record, every storage against the record's size;
3. the placeholders become :class:`~numcnn.autograd.tensor.Tensor` views of the storages they name (views that
   share a storage in the file share memory after loading, as in PyTorch).
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from ._io import atomic_write
from .autograd.tensor import Size, Tensor

__all__ = ["is_pth", "load_pth", "nonfinite", "save_pth"]

#: torch's legacy storage classes -> the dtype of their elements (None: NumPy cannot hold it).
STORAGES = {"DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
            "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
            "ComplexDoubleStorage": "<c16", "ComplexFloatStorage": "<c8", "BFloat16Storage": None}
#: torch dtypes (``torch.float32`` is pickled as the global ``torch float32``) -> NumPy's; None: NumPy has none.
DTYPES = {"float64": "<f8", "float32": "<f4", "float16": "<f2", "int64": "<i8", "int32": "<i4", "int16": "<i2",
          "int8": "i1", "uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "bool": "?",
          "complex64": "<c8", "complex128": "<c16", "bfloat16": None, "float8_e4m3fn": None, "float8_e5m2": None,
          "float8_e4m3fnuz": None, "float8_e5m2fnuz": None}
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")  # pre-1.6 torch.save files
MAX_DEPTH = 64  # containers nested deeper than this (or containing themselves) are refused
MAX_DIMS = 64
MAX_REPEATED = 2**30  # bytes: a view larger than its storage (stride 0, as expand() makes) may reach this, no more
ALIGNMENT = 64  # storages start at multiples of this in the files numcnn writes, as in torch's

#: The opcodes data.pkl may use: values, containers, the memo, globals, calls and persistent ids. Refused: INST,
#: OBJ, NEWOBJ(_EX) (instances made without a checked call), EXT1-4 (the extension registry), out-of-band buffers.
SAFE_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 LONG4 "
    "FLOAT BINFLOAT STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8 BINBYTES "
    "SHORT_BINBYTES BINBYTES8 BYTEARRAY8 EMPTY_LIST APPEND APPENDS LIST EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 "
    "EMPTY_DICT DICT SETITEM SETITEMS EMPTY_SET ADDITEMS FROZENSET GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT "
    "MEMOIZE GLOBAL STACK_GLOBAL REDUCE BUILD PERSID BINPERSID".split())


class PthError(Exception):
    """A reason to refuse the file; ``load_pth`` turns it into one ValueError line naming the file."""


def _np_dtype(code: str | None, what: str) -> np.dtype:
    if code is None:
        raise PthError(f"{what} has a dtype NumPy cannot hold; numcnn reads float16/32/64, complex64/128, "
                       "int8/16/32/64, uint8/16/32/64 and bool")
    return np.dtype(code)


# ------------------------------------------------------------------------------------------------ placeholders


class _Inert:
    """What the unpickler hands back for torch objects: no behaviour, and no state a pickle can BUILD into it."""

    __slots__ = ()

    def __setstate__(self, state):
        raise PthError(f"the pickle sets the state of a {type(self).__name__.lstrip('_')}, which torch.save never does")


class _StorageType(_Inert):
    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str | None):
        self.name, self.code = name, code


class _TorchDtype(_Inert):
    __slots__ = ("name", "code")

    def __init__(self, name: str, code: str | None):
        self.name, self.code = name, code


class _Storage(_Inert):
    """One ``data/<key>`` record: ``numel`` elements of ``code`` (bytes when untyped), checked against the zip."""

    __slots__ = ("key", "kind", "numel")

    def __init__(self, key: str, kind: _StorageType, numel: int):
        self.key, self.kind, self.numel = key, kind, numel

    @property
    def untyped(self) -> bool:
        return self.kind.name == "UntypedStorage"


class _View(_Inert):
    """A tensor still to be made: a checked view (offset, size, stride, in elements) of a storage."""

    __slots__ = ("storage", "dtype", "offset", "size", "stride", "requires_grad", "negate", "conjugate")

    def __init__(self, storage, dtype, offset, size, stride, requires_grad, metadata):
        self.storage, self.dtype, self.offset, self.size, self.stride = storage, dtype, offset, size, stride
        self.requires_grad = requires_grad
        self.negate, self.conjugate = bool(metadata.get("neg")), bool(metadata.get("conj"))


# ------------------------------------------------------------------------------------------------ the allow-list


def _ints(value, what: str, limit: int = MAX_DIMS) -> tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) > limit or not all(type(v) is int and v >= 0 for v in value):
        raise PthError(f"a tensor's {what} must be a tuple of at most {limit} non-negative ints, got {value!r:.80}")
    return value


def _check_view(storage: _Storage, dtype: np.dtype, offset, size, stride) -> None:
    """Refuse a view that reaches outside its storage, or a shape NumPy cannot represent, before anything is made."""
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride) or type(offset) is not int or offset < 0:
        raise PthError(f"a tensor's geometry is inconsistent: size {size}, stride {stride}, offset {offset!r}")
    elements = storage.numel if not storage.untyped else storage.numel // dtype.itemsize
    if storage.untyped and storage.numel % dtype.itemsize:
        raise PthError(f"storage '{storage.key}' holds {storage.numel} bytes, not a whole number of {dtype}")
    if math.prod(max(s, 1) for s in size) * dtype.itemsize >= 2**62:
        raise PthError(f"a tensor declares size {size}: {math.prod(size)} elements, more than any file holds")
    if math.prod(size) > max(elements, MAX_REPEATED // dtype.itemsize):  # only views repeating elements get here
        raise PthError(f"a tensor of size {size}, stride {stride} repeats the {elements} elements of storage "
                       f"'{storage.key}' {math.prod(size)} times over; numcnn refuses such views beyond 1 GiB")
    if math.prod(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= elements:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        raise PthError(f"a tensor of size {size}, stride {stride}, offset {offset} reads element {last} of storage "
                       f"'{storage.key}', which holds {elements}")


def _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata) -> _View:
    if type(requires_grad) is not bool or not isinstance(hooks, (dict, type(None))) or hooks:
        raise PthError("a tensor carries requires_grad that is not a bool, or backward hooks (code)")
    if not isinstance(metadata, (dict, type(None))) or set(metadata or {}) - {"neg", "conj"}:
        raise PthError(f"a tensor carries metadata {metadata!r:.80}; numcnn knows only 'neg' and 'conj'")
    _check_view(storage, dtype, offset, size, stride)
    if requires_grad and dtype.kind not in "fc":
        raise PthError(f"a tensor of dtype {dtype} requires grad; only floating point tensors can")
    return _View(storage, dtype, offset, size, stride, requires_grad, metadata or {})


def _storage_of(storage) -> _Storage:
    if not isinstance(storage, _Storage):
        raise PthError(f"a tensor is rebuilt from a {type(storage).__name__}, not from a storage record")
    return storage


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks, metadata=None) -> _View:
    storage = _storage_of(storage)
    if storage.untyped:
        raise PthError(f"_rebuild_tensor_v2 names the untyped storage '{storage.key}' without a dtype")
    dtype = _np_dtype(storage.kind.code, f"storage '{storage.key}' (torch.{storage.kind.name})")
    return _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None) -> _View:
    storage = _storage_of(storage)
    if not isinstance(dtype, _TorchDtype):
        raise PthError(f"_rebuild_tensor_v3's dtype is a {type(dtype).__name__}, not a torch dtype")
    dtype = _np_dtype(dtype.code, f"a tensor of torch.{dtype.name}")
    return _view(storage, offset, size, stride, requires_grad, hooks, dtype, metadata)


def _rebuild_parameter(data, requires_grad, hooks, state=None) -> _View:
    if not isinstance(data, _View) or type(requires_grad) is not bool or hooks or state not in (None, {}, (None, {})):
        raise PthError("a Parameter is rebuilt from something other than a tensor, or with hooks or attributes")
    if requires_grad and data.dtype.kind not in "fc":
        raise PthError(f"a Parameter of dtype {data.dtype} requires grad; only floating point tensors can")
    data.requires_grad = requires_grad
    return data


def _checked(kind: type, make: Callable, what: str) -> Callable:
    def build(*args):
        if len(args) > 1 or (args and not isinstance(args[0], kind)):
            raise PthError(f"{what} is called with {tuple(type(a).__name__ for a in args)}")
        return make(*args)
    return build


def _encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise PthError(f"_codecs.encode is called with {type(text).__name__}, {encoding!r:.20}, not str, 'latin1'")
    return text.encode("latin1")


def _complex(real=0.0, imag=0.0):
    if not all(type(v) in (int, float) for v in (real, imag)):
        raise PthError("complex() is called with something other than two numbers")
    return complex(real, imag)


def _device(kind, index=None):
    if not isinstance(kind, str) or not isinstance(index, (int, type(None))):
        raise PthError("torch.device is called with something other than a name and an index")
    return kind if index is None else f"{kind}:{index}"


_HASHABLE = (str, int, float, bool, bytes, type(None), tuple)
_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): _checked((list, tuple, dict), OrderedDict, "collections.OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): lambda dims=(): Size(_ints(dims, "torch.Size", limit=MAX_DIMS)),
    ("torch", "device"): _device,
    ("_codecs", "encode"): _encode,
    ("torch.storage", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
    ("torch", "UntypedStorage"): _StorageType("UntypedStorage", "u1"),
    **{("torch", name): _StorageType(name, code) for name, code in STORAGES.items()},
    **{("torch", name): _TorchDtype(name, code) for name, code in DTYPES.items()},
}
for _module in ("builtins", "__builtin__"):  # protocol 2 names Python 3's builtins by their Python 2 module
    _GLOBALS[_module, "set"] = _checked((list, tuple), lambda items=(): set(_hashable(items)), "set")
    _GLOBALS[_module, "frozenset"] = _checked((list, tuple), lambda items=(): frozenset(_hashable(items)), "frozenset")
    _GLOBALS[_module, "bytearray"] = _checked((bytes,), bytearray, "bytearray")
    _GLOBALS[_module, "complex"] = _complex


def _plain(v, depth: int = 0) -> bool:
    """Whether ``v`` may be a dict key or a set element: a number, string, bytes, None, or a tuple of those."""
    if not isinstance(v, tuple):
        return isinstance(v, _HASHABLE)
    return depth < MAX_DEPTH and all(_plain(i, depth + 1) for i in v)


def _hashable(items):
    if not all(_plain(v) for v in items):
        raise PthError("a set holds something other than numbers, strings, bytes and tuples of them")
    return items


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
