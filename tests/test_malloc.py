"""numcnn/_config/malloc.py: import numcnn makes glibc serve activation-sized blocks from its heap (no fresh mmap)."""

import subprocess
import sys

import pytest

from numcnn._config.malloc import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None or not hasattr(_glibc(), "mallinfo2"), reason="needs glibc >= 2.33")

# Counts glibc's mmapped chunks (mallinfo2().hblks) around the allocation of an 8 MiB array.
PROBE = """
import ctypes, sys
import numcnn
from numcnn._config import malloc_tuned
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
import numpy as np
before = libc.mallinfo2().hblks
a = np.ones(2 << 20, dtype=np.float32)
print(int(malloc_tuned()), libc.mallinfo2().hblks - before)
"""


def _probe(env_value):
    import os

    env = dict(os.environ)
    env.pop("NUMCNN_MALLOC_TUNING", None)
    if env_value is not None:
        env["NUMCNN_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    tuned, new_mmaps = map(int, out.stdout.split())
    return tuned, new_mmaps


def test_import_tunes_malloc_so_large_arrays_come_from_the_heap():
    assert _probe(None) == (1, 0)


def test_environment_variable_turns_the_tuning_off():
    # Untuned glibc maps an 8 MiB block on its own (its default threshold is 128 KiB, raised only by frees).
    assert _probe("0") == (0, 1)
