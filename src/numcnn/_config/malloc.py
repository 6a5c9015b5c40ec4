"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

Why: a training step allocates and frees dozens of activation-sized arrays (megabytes each). By default glibc
serves such blocks with fresh ``mmap``s, or trims the top of its heap once a few megabytes are free, so the next
step maps the same memory again and pays a page fault per 4 KiB page on first touch (what that costs a training
step: docs/performance.md).

``tune_malloc`` sets two glibc knobs, as a caching allocator would: blocks up to 32 MiB (glibc's largest
``M_MMAP_THRESHOLD``) come from the heap, and the heap is trimmed only when 1 GiB at its top is free. Freed memory
is then reused by the next allocation of the process; the resident set stays near its peak instead of shrinking
between steps (the peak itself does not grow). ``import numcnn`` calls it unless ``NUMCNN_MALLOC_TUNING=0`` is set
in the environment; it does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_state = {"tuned": False}


def _glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def tune_malloc() -> bool:
    """Set glibc's mmap and trim thresholds as described in the module docstring. Returns whether both took
    effect (False on a C library other than glibc, or if glibc refused a value)."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(MMAP_THRESHOLD)) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(TRIM_THRESHOLD)) == 1 and ok
    _state["tuned"] = ok
    return ok


def malloc_tuned() -> bool:
    """Whether ``tune_malloc`` ran and succeeded in this process."""
    return _state["tuned"]


def tune_malloc_from_env() -> None:
    """What ``import numcnn`` does: tune unless ``NUMCNN_MALLOC_TUNING`` is ``0`` (any other value, or unset, tunes)."""
    value = os.environ.get("NUMCNN_MALLOC_TUNING", "1").strip()
    if value != "0":
        tune_malloc()
