"""Arrays on the wire: ``{"dtype": "float32"|"uint8", "shape": [...], "b64": base64 of the little-endian bytes}``.

The page decodes them into typed arrays (``Float32Array`` / ``Uint8Array``); plain JSON lists of floats would be
five times larger and slower to parse. ``numcnn._schema.clean_json`` turns NumPy scalars and non-finite floats
into plain JSON.
"""

from __future__ import annotations

import base64
import binascii
import math

import numpy as np

from .errors import ExploreError

DTYPES = {"float32": np.dtype("<f4"), "uint8": np.dtype("u1")}


def pack(a: np.ndarray) -> dict:
    """A float32 or uint8 array as a packed-array dict (other float dtypes are stored as float32)."""
    a = np.asarray(a)
    name = "uint8" if a.dtype == np.uint8 else "float32"
    data = np.ascontiguousarray(a, dtype=DTYPES[name])
    return {"dtype": name, "shape": [int(s) for s in a.shape], "b64": base64.b64encode(data.tobytes()).decode()}


def unpack(obj, what: str = "array") -> np.ndarray:
    """The array of a packed-array dict; ExploreError (400) naming ``what`` for anything else."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "b64"}:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ExploreError(f"{what}: expected a packed array {{dtype, shape, b64}}, got {got}")
    dtype, shape, b64 = obj["dtype"], obj["shape"], obj["b64"]
    if dtype not in DTYPES:
        raise ExploreError(f"{what}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in shape):
        raise ExploreError(f"{what}: shape must be a list of non-negative ints, got {shape!r}")
    if not isinstance(b64, str):
        raise ExploreError(f"{what}: b64 must be a base64 string, got {type(b64).__name__}")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ExploreError(f"{what}: b64 is not valid base64") from None
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if len(raw) != expected:
        raise ExploreError(f"{what}: shape {shape} of {dtype} needs {expected} bytes, b64 holds {len(raw)}")
    return np.frombuffer(raw, dtype=DTYPES[dtype]).reshape(shape).astype(DTYPES[dtype].newbyteorder("="))

