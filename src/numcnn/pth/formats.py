"""What torch.save files hold (storage classes, dtypes, the pickle opcodes it writes) and the limits numcnn
reads them within."""

from __future__ import annotations

import numpy as np

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


