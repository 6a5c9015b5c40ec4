"""Read and write the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then ``ndim`` big-endian uint32
dimensions, then ``prod(dims)`` big-endian items in C order. Compression is recognised by the gzip
magic bytes ``1f 8b``, never by the file name.

Every size is checked against the header before any payload is allocated, so a forged header that
claims 10**12 items is refused on the spot instead of exhausting memory.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from numcnn._io import atomic_write

__all__ = ["read_idx", "write_idx", "IDX_DTYPES"]

#: IDX dtype code -> big-endian NumPy dtype of the payload.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand data by more than ~1032:1, so a gzip file of S bytes cannot honestly hold
# more than this many times S bytes: the bound that lets us refuse forged headers before allocating.
_MAX_DEFLATE_RATIO = 1100
_CHUNK = 1 << 22


def _describe(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    what = {1: "label data", 3: "pixel data"}.get(len(shape), "data")
    return f"{dtype.newbyteorder('=').name} {what} for shape {shape}"


def _read_exact(stream: BinaryIO, buf: memoryview) -> int:
    """Fill ``buf`` from ``stream``; return the number of bytes actually read (less at end of data)."""
    filled = 0
    while filled < len(buf):
        n = stream.readinto(buf[filled : filled + _CHUNK])
        if not n:
            break
        filled += n
    return filled


def _count(stream: BinaryIO) -> int:
    """Read ``stream`` to its end without keeping the data; return the number of bytes."""
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
    return total


def _parse_header(stream: BinaryIO, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    magic = stream.read(4)
    if len(magic) < 4:
        raise ValueError(f"{name}: not an IDX file: {len(magic)} bytes, too short for the 4-byte magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{name}: not an IDX file: magic number starts with {magic[:2].hex(' ')}, expected 00 00")
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {dt.newbyteorder('=').name}" for c, dt in IDX_DTYPES.items())
        raise ValueError(f"{name}: unknown IDX dtype code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    raw_dims = stream.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header: expected {ndim} dimensions ({4 * ndim} bytes), found {len(raw_dims)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", raw_dims)
    dtype = IDX_DTYPES[code]
    return dtype, shape, 4 + 4 * ndim


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzip or plain, detected by its magic bytes).

    Returns an array of the stored shape in native byte order, with dtype uint8, int8, int16, int32,
    float32 or float64 as the header says. Raises ``ValueError`` naming the file and the problem for
    a wrong magic number, an unknown dtype code, a payload that is shorter or longer than
    ``prod(dims) * itemsize``, or a corrupt gzip stream; ``FileNotFoundError`` if it does not exist.
    """
    path = Path(path)
    name = str(path)
    file_size = path.stat().st_size
    with open(path, "rb") as raw:
        compressed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            dtype, shape, header_size = _parse_header(stream, name)
            expected = math.prod(shape) * dtype.itemsize
            described = _describe(dtype, shape)
            mismatch = f"{name}: expected {expected} bytes of {described}, found {{}}"
            if not compressed and expected != file_size - header_size:
                raise ValueError(mismatch.format(file_size - header_size))
            if compressed and expected > _MAX_DEFLATE_RATIO * file_size:
                # Too much for this file to hold: count what it does hold, a chunk at a time.
                raise ValueError(mismatch.format(_count(stream)))
            out = np.empty(expected, dtype=np.uint8)
            found = _read_exact(stream, memoryview(out))
            # Reading on to the end also makes gzip check the stream's CRC and length.
            found += _count(stream)
            if found != expected:
                raise ValueError(mismatch.format(found))
        except (gzip.BadGzipFile, zlib.error, EOFError) as err:
            raise ValueError(f"{name}: corrupt or truncated gzip stream ({err})") from err
    data = out.view(dtype).reshape(shape)
    # Multi-byte items come big-endian from the file; hand back native order, as NumPy code expects.
    return data if dtype.itemsize == 1 else data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file; gzip it when ``compress`` is true (default: when the name ends in .gz).

    ``array``: any shape with 1 to 255 dimensions, each below 2**32; dtype uint8, int8, int16, int32,
    float32 or float64 (IDX has no 64-bit integers: cast first). The file is written to a temporary
    file in the same folder and renamed into place, so a crash never leaves a half-written file.
    """
    array = np.asarray(array)
    path = Path(path)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None or array.dtype.kind == "b":
        known = ", ".join(dt.newbyteorder("=").name for dt in IDX_DTYPES.values())
        raise ValueError(f"write_idx({path}): IDX cannot store dtype {array.dtype}; use one of {known}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx({path}): IDX stores 1 to 255 dimensions, got shape {array.shape}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx({path}): every dimension must be below 2**32, got shape {array.shape}")
    if compress is None:
        compress = path.suffix == ".gz"
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    def write(f) -> None:
        if compress:
            # mtime=0 makes the output reproducible byte for byte.
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            f.write(header)
            f.write(payload)

    atomic_write(path, write)
