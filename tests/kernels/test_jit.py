"""The compiled kernels' helpers in kernels/jit.py: ``stack_array`` (scratch on the kernel's stack, which LLVM may
keep in registers) and ``copy_run`` (a run of up to 16 numbers as one masked vector copy)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from numcnn.kernels import jit  # noqa: E402
from numcnn.kernels.jit import copy_run, kernel, stack_array  # noqa: E402


@kernel
def _two_stack_arrays(x, out):
    """out[0] = x + 1 and out[1] = 2*x, written through two stack arrays filled one after the other, read back
    after both are filled (they must not overlap), and a third array in x's dtype, filled in a loop."""
    a = stack_array(64, np.float32)
    b = stack_array(64, np.float32)
    for i in range(64):
        a[i] = x[i] + 1
    for i in range(64):
        b[i] = 2 * x[i]
    for i in range(64):
        out[0, i], out[1, i] = a[i], b[i]
    c = stack_array(16, x.dtype)
    for r in range(3):
        for i in range(16):
            c[i] = x[i] * r
        for i in range(16):
            out[2 + r, i] = c[i]


@kernel
def _copy_runs(dst, src, i, j, n):
    copy_run(dst, i, src, j, n)


def test_stack_arrays_hold_what_was_written_and_do_not_overlap():
    for dtype in (np.float32, np.float64):
        x = np.arange(64, dtype=dtype) - 20
        out = np.full((5, 64), np.nan, dtype=np.float32)
        _two_stack_arrays(x, out)
        np.testing.assert_array_equal(out[0], x + 1)
        np.testing.assert_array_equal(out[1], 2 * x)
        for r in range(3):
            np.testing.assert_array_equal(out[2 + r, :16], x[:16] * r)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_run_copies_exactly_n_numbers(dtype):
    src = np.arange(1, 41, dtype=dtype)
    for n in range(17):
        for i, j in ((0, 0), (3, 5), (7, 24)):
            dst = np.full(40, -1.0, dtype=dtype)
            _copy_runs(dst, src, i, j, n)
            want = np.full(40, -1.0, dtype=dtype)
            want[i : i + n] = src[j : j + n]
            np.testing.assert_array_equal(dst, want)


def test_helpers_refuse_python_calls_and_kernels_without_them_are_left_alone():
    with pytest.raises(RuntimeError, match="only inside a compiled kernel"):
        stack_array(4, np.float32)
    with pytest.raises(RuntimeError, match="only inside a compiled kernel"):
        copy_run(np.zeros(4), 0, np.zeros(4), 0, 4)

    def plain(x):
        return x + 1

    assert jit._with_intrinsics(plain) is plain
    made = jit._with_intrinsics(_copy_runs.fn)
    assert made is not _copy_runs.fn and made.__qualname__ == _copy_runs.fn.__qualname__
    assert made.__globals__["copy_run"] is not copy_run and "stack_array" not in jit._names(_copy_runs.fn.__code__)


@kernel(inline=True)
def _axpy(a, x, y):
    for i in range(len(x)):
        y[i] += a * x[i]


@kernel
def _sum_of_squares(x):
    s = 0.0
    for v in x:
        s += v * v
    return s


@kernel
def _calls_helpers(x, y):
    """y += 2x through an inlined helper, then y[0] += sum(x**2) through a helper compiled on its own."""
    _axpy(2.0, x, y)
    y[0] += _sum_of_squares(x)


def test_kernels_call_other_kernels():
    x, y = np.arange(5.0), np.ones(5)
    _calls_helpers(x, y)
    np.testing.assert_array_equal(y, np.array([1 + 30, 3, 5, 7, 9]))
    assert _sum_of_squares(x) == 30.0  # a helper is still a kernel of its own, callable from Python
    assert jit._with_intrinsics(_calls_helpers.fn).__globals__["_axpy"] is _axpy._compile()
