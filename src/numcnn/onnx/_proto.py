"""ONNX TensorProto <-> ndarray with every size checked before anything is allocated.

A forged file may declare dims of 10**12 elements, a raw payload that does not match them, or data kept in an
external file; each is refused here with the tensor's name, never turned into a huge allocation or a file read.
"""

from __future__ import annotations

import math

import numpy as np

#: The most elements one tensor (an initializer, a constant or an intermediate result of a padding, expand or
#: transposed convolution) may have: 2**28 float32 values are 1 GiB.
MAX_ELEMENTS = 1 << 28
MAX_RANK = 16


class GraphError(ValueError):
    """An ONNX file or graph that numcnn refuses, at load or at run time: the message names the tensor or node."""


# TensorProto.DataType codes (stable across ONNX versions) of the dtypes numcnn runs.
FLOAT, UINT8, INT8, INT32, INT64, BOOL, DOUBLE = 1, 2, 3, 6, 7, 9, 11
NP_OF_ONNX: dict[int, np.dtype] = {
    FLOAT: np.dtype(np.float32), DOUBLE: np.dtype(np.float64), INT64: np.dtype(np.int64),
    INT32: np.dtype(np.int32), INT8: np.dtype(np.int8), UINT8: np.dtype(np.uint8), BOOL: np.dtype(np.bool_),
}
ONNX_OF_NP = {v: k for k, v in NP_OF_ONNX.items()}
_NAMES = {1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "STRING",
          9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 16: "BFLOAT16"}


def dtype_name(code: int) -> str:
    return _NAMES.get(code, f"data type {code}")


def supported_dtypes() -> str:
    return ", ".join(dtype_name(c) for c in NP_OF_ONNX)


def check_elements(shape, what: str, base: int = 0) -> None:
    """Refuse a shape whose element count exceeds :data:`MAX_ELEMENTS` (before it is allocated), unless it is at
    most 16 times ``base`` (the input it is computed from: a big batch is the caller's, not the file's, doing)."""
    n = math.prod(int(s) for s in shape)
    if n > MAX_ELEMENTS and n > 16 * base:
        raise GraphError(f"{what}: shape {tuple(int(s) for s in shape)} has {n} elements, more than the limit "
                         f"of {MAX_ELEMENTS} (numcnn.onnx._proto.MAX_ELEMENTS)")


def _typed_field(t, code: int):
    if code == FLOAT:
        return t.float_data
    if code == DOUBLE:
        return t.double_data
    if code == INT64:
        return t.int64_data
    return t.int32_data  # INT32, INT8, UINT8 and BOOL are stored widened to int32


def to_array(t, what: str) -> np.ndarray:
    """TensorProto -> a new ndarray (native byte order). ``what`` names the tensor in error messages."""
    code = t.data_type
    if code not in NP_OF_ONNX:
        raise GraphError(f"{what}: tensors of type {dtype_name(code)} are not supported (supported: "
                         f"{supported_dtypes()})")
    if t.data_location == 1 or len(t.external_data):
        raise GraphError(f"{what}: the data is stored in an external file; numcnn reads only self-contained "
                         "ONNX files (it never opens other paths a model names)")
    if t.HasField("segment"):
        raise GraphError(f"{what}: segmented tensors are not supported")
    dims = list(t.dims)
    if len(dims) > MAX_RANK or any(d < 0 for d in dims):
        raise GraphError(f"{what}: invalid dims {dims}")
    check_elements(dims, what)
    dtype = NP_OF_ONNX[code]
    n = math.prod(dims)
    if t.raw_data:
        if len(t.raw_data) != n * dtype.itemsize:
            raise GraphError(f"{what}: dims {dims} of {dtype_name(code)} need {n * dtype.itemsize} bytes, the raw "
                             f"data has {len(t.raw_data)}")
        arr = np.frombuffer(t.raw_data, dtype=dtype.newbyteorder("<")).astype(dtype)
    else:
        field = _typed_field(t, code)
        if len(field) != n:
            raise GraphError(f"{what}: dims {dims} need {n} values, the tensor holds {len(field)}")
        arr = np.asarray(field, dtype=np.int64 if code in (INT32, INT8, UINT8, BOOL) else dtype).astype(dtype)
    return arr.reshape(dims)


def from_array(arr: np.ndarray, name: str):
    """ndarray -> TensorProto with raw little-endian data."""
    from onnx import TensorProto

    arr = np.asarray(arr)
    if arr.dtype not in ONNX_OF_NP:
        raise TypeError(f"ONNX export: cannot store {name!r} of dtype {arr.dtype} (supported: "
                        f"{', '.join(str(d) for d in ONNX_OF_NP)})")
    t = TensorProto()
    t.name = name
    t.data_type = ONNX_OF_NP[arr.dtype]
    t.dims.extend(arr.shape)
    t.raw_data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return t
