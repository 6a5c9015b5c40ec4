"""The compiled passes of LeNet-5's non-convolution layers (issue 12): tanh and sigmoid backward from the saved output
(``kernels/activation_compiled.py``) and average pooling 2x2 / stride 2 (``kernels/pool/avg_compiled.py``).

Each against a float64 reference, bit for bit against the NumPy kernels (both claim it), against PyTorch in float32
(values and gradients through numcnn's autograd), on odd shapes (batch 1, odd sizes) and layouts (NCHW,
channel-major, mixed, not dense), with every output element written (fresh arrays filled with NaN change nothing),
and the same bits for 1, 2 and 3 kernel threads (in a fresh process)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

import numcnn  # noqa: E402
from layouts import channel_major as _channel_major  # noqa: E402
from layouts import in_layout as _layout  # noqa: E402
from numcnn.kernels import activation as KA  # noqa: E402
from numcnn.kernels import activation_compiled as AC  # noqa: E402
from numcnn.kernels import pool as P  # noqa: E402
from numcnn.kernels.layout import is_channel_major  # noqa: E402
from numcnn.kernels.pool import avg_compiled  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from numcnn.nn import functional as F  # noqa: E402
from thread_bits import assert_same_bits_for_1_2_and_3_threads  # noqa: E402

POOL = ((2, 2), (2, 2), (0, 0))


def _numpy(fn, *args):
    with runtime.scoped(backend="numpy"):
        return fn(*args)


def _compiled(fn, *args):
    with runtime.scoped(backend="numba"):
        return fn(*args)


@pytest.fixture
def nan_empty(monkeypatch):
    """np.empty hands out arrays full of NaN: a kernel that leaves an element unwritten shows it. Every kernel is
    compiled first (Numba would find the stand-in where kernels call np.empty)."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        for w in (4, 5):
            x = rng.standard_normal((2, 2, 4, w)).astype(dtype)
            _compiled(P.avg_pool2d_backward, _compiled(P.avg_pool2d_forward, x, *POOL), x.shape, *POOL)
    big = rng.standard_normal((2, 2, 128, 128)).astype(np.float32)
    for name in ("tanh", "sigmoid"):
        AC.backward(name, big, big)
        AC.backward(name, big, _channel_major(big))
    real = np.empty

    def empty(shape, dtype=float, order="C", **kw):
        out = real(shape, dtype=dtype, order=order, **kw)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        return out

    monkeypatch.setattr(np, "empty", empty)


# ---- tanh and sigmoid backward ----------------------------------------------------------------------------------

ACT_SHAPES = [(100, 6, 28, 28), (1, 7, 97, 101), (3, 5, 67, 71), (70001,), (257, 300)]
BACKWARDS = {"tanh": (KA.tanh, KA.tanh_backward, lambda dy, y: dy * (1 - y * y)),
             "sigmoid": (KA.sigmoid, KA.sigmoid_backward, lambda dy, y: dy * (1 - y) * y)}


ACT_LAYOUTS = [("nchw", "nchw"), ("channel_major", "channel_major"), ("nchw", "channel_major"),
               ("channel_major", "nchw"), ("strided", "nchw"), ("nchw", "strided")]
ACT_CASES = [(shape, layouts) for shape in ACT_SHAPES for layouts in ACT_LAYOUTS  # channel-major is 4-D only
             if len(shape) == 4 or layouts == ("nchw", "nchw") or "strided" in layouts]


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@pytest.mark.parametrize(("shape", "layouts"), ACT_CASES)
def test_compiled_tanh_sigmoid_backward(name, shape, layouts, nan_empty, monkeypatch):
    """dy's layout first, then y's: one pass, bit-equal to the NumPy kernel, within 1e-6 * |dy| of the float64
    formula on the same y (|1 - y*y| and |(1 - y) y| are at most 1), laid out like y; many small parts too."""
    monkeypatch.setattr(AC, "_PART", 1 << 18 if shape[0] != 3 else 5000)
    rng = np.random.default_rng(sum(shape))
    fwd, bwd, formula = BACKWARDS[name]
    y = _layout(fwd((rng.standard_normal(shape) * 2).astype(np.float32)), layouts[1])
    dy = _layout(rng.standard_normal(shape).astype(np.float32), layouts[0])
    assert AC.supported(KA._COMPILED_MIN, y, dy)
    dx = _compiled(bwd, dy, y)
    assert dx.dtype == np.float32 and dx.shape == shape
    np.testing.assert_array_equal(dx, _numpy(bwd, dy, y))  # the same bits (NaN nowhere)
    ref = formula(dy.astype(np.float64), y.astype(np.float64))
    assert np.all(np.abs(dx - ref) <= 1e-6 * np.abs(dy))
    if layouts[1] == "channel_major" and len(shape) == 4 and shape[0] > 1:
        assert is_channel_major(dx)
    elif layouts[1] == "nchw":
        assert dx.flags.c_contiguous


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_compiled_activation_backward_special_values(name):
    """NaN, infinities, -0.0 and saturated outputs: the same bits as NumPy's three passes."""
    rng = np.random.default_rng(1)
    y = np.tanh(rng.standard_normal(KA._COMPILED_MIN).astype(np.float32) * 20)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    y[:6] = [np.nan, 1.0, -1.0, -0.0, 0.0, 0.5]
    dy[6:12] = [np.nan, np.inf, -np.inf, -0.0, 1e-45, 3e38]
    _, bwd, _ = BACKWARDS[name]
    with np.errstate(invalid="ignore"):  # inf * 0
        np.testing.assert_array_equal(_compiled(bwd, dy, y).view(np.uint32), _numpy(bwd, dy, y).view(np.uint32))


def test_compiled_activation_backward_is_for_float32_of_one_shape():
    y = np.zeros((300, 300), np.float32)
    assert AC.supported(KA._COMPILED_MIN, y, y)
    assert not AC.supported(KA._COMPILED_MIN, y.astype(np.float64), y.astype(np.float64))
    assert not AC.supported(KA._COMPILED_MIN, y, y.astype(np.float64))
    assert not AC.supported(KA._COMPILED_MIN, y[:10], y[:10])  # small: NumPy's call costs less
    dy64 = np.ones((300, 300))
    assert _compiled(KA.tanh_backward, dy64, y.astype(np.float64)).dtype == np.float64


def test_numpy_tanh_is_within_float32_rounding_of_float64():
    """The forward stays np.tanh (see activation_compiled's docstring): within 1e-6 relative of float64."""
    x = (np.random.default_rng(2).standard_normal(1 << 18) * 4).astype(np.float32)
    ref = np.tanh(x.astype(np.float64))
    np.testing.assert_allclose(KA.tanh(x), ref, rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(KA.sigmoid(x), 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6, atol=1e-30)


# ---- average pooling 2x2 / stride 2 -----------------------------------------------------------------------------

AVG_SHAPES = [(100, 6, 28, 28), (1, 3, 7, 9), (2, 5, 2, 2), (3, 2, 9, 4), (4, 16, 10, 10), (1, 1, 3, 3)]


def _avg_reference(x):
    """Window means and the backward of dy = 1..n (dy / 4 at each window's pixels), in float64."""
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    x64 = x[:, :, : 2 * ho, : 2 * wo].astype(np.float64).reshape(n, c, ho, 2, wo, 2)
    return x64.mean(axis=(3, 5))


@pytest.mark.parametrize("shape", AVG_SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_avg_pool_2x2(shape, layout, dtype, nan_empty, monkeypatch):
    """Exact against float64 on multiples of 1/4 (sums and quarters exact), bit-equal to the NumPy kernels on
    random data, y laid out like x's planes, dx like dy's, 0 on an odd last row or column; many plane blocks too."""
    monkeypatch.setattr(avg_compiled, "_PART_BYTES", 256 if shape[0] == 3 else 1 << 23)
    rng = np.random.default_rng(sum(shape))
    exact = _layout((rng.integers(-400, 400, shape) / 4).astype(dtype), layout)
    y = _compiled(P.avg_pool2d_forward, exact, *POOL)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, _avg_reference(exact))
    x = _layout(rng.standard_normal(shape).astype(dtype), layout)
    y = _compiled(P.avg_pool2d_forward, x, *POOL)
    np.testing.assert_array_equal(y, _numpy(P.avg_pool2d_forward, x, *POOL))
    np.testing.assert_allclose(y, _avg_reference(x), rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)
    if layout == "channel_major" and shape[0] > 1 and shape[1] > 1:
        assert is_channel_major(y)
    for dy_layout in ("nchw", "channel_major", "strided"):
        dy = _layout(rng.standard_normal(y.shape).astype(dtype), dy_layout)
        dx = _compiled(P.avg_pool2d_backward, dy, shape, *POOL)
        assert dx.dtype == dtype and dx.shape == shape
        np.testing.assert_array_equal(dx, _numpy(P.avg_pool2d_backward, dy, shape, *POOL))
        ref = np.zeros(shape)
        ho, wo = y.shape[2:]
        ref[:, :, : 2 * ho, : 2 * wo] = np.repeat(np.repeat(dy.astype(np.float64) / 4, 2, axis=2), 2, axis=3)
        np.testing.assert_array_equal(dx, ref)  # dy / 4 is exact
        if dy_layout == "channel_major" and shape[0] > 1 and shape[1] > 1:
            assert is_channel_major(dx)


def test_compiled_avg_pool_covers_lenet_pooling_only():
    s = (2, 3, 8, 8)
    assert avg_compiled.supported(s, np.float32, (2, 2), (2, 2), (0, 0), False, None)
    assert avg_compiled.supported(s, np.float32, (2, 2), (2, 2), (0, 0), True, 4)  # even sizes: ceil adds nothing
    assert not avg_compiled.supported((2, 3, 9, 8), np.float32, (2, 2), (2, 2), (0, 0), True, None)
    assert not avg_compiled.supported(s, np.float32, (2, 2), (2, 2), (1, 1), False, None)
    assert not avg_compiled.supported(s, np.float32, (3, 3), (2, 2), (0, 0), False, None)
    assert not avg_compiled.supported(s, np.float32, (2, 2), (1, 1), (0, 0), False, None)
    assert not avg_compiled.supported(s, np.float32, (2, 2), (2, 2), (0, 0), False, 3)
    assert not avg_compiled.supported(s, np.float16, (2, 2), (2, 2), (0, 0), False, None)
    assert not avg_compiled.supported((2, 3, 1, 8), np.float32, (2, 2), (2, 2), (0, 0), False, None)
    # ceil_mode over an odd edge runs the NumPy kernels: PyTorch's extra, clipped window
    x = np.random.default_rng(3).standard_normal((2, 3, 9, 9)).astype(np.float32)
    y = _compiled(P.avg_pool2d_forward, x, *POOL, True)
    assert y.shape == (2, 3, 5, 5)
    np.testing.assert_array_equal(y, _numpy(P.avg_pool2d_forward, x, *POOL, True))


# ---- against PyTorch: values and gradients through autograd -----------------------------------------------------


@pytest.mark.parametrize("shape", [(100, 6, 28, 28), (1, 3, 13, 17), (5, 16, 10, 10)])
@pytest.mark.parametrize("channel_major", [False, True])
def test_tanh_avgpool_sigmoid_chain_matches_pytorch(shape, channel_major):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    up = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
    with runtime.scoped(backend="numba"):
        tx = numcnn.tensor(_channel_major(x) if channel_major else x, requires_grad=True)
        a = F.avg_pool2d(numcnn.tanh(tx), 2)
        out = numcnn.sigmoid(a * 3.0)
        (out * numcnn.tensor(up)).sum().backward()
    ref_x = torch.tensor(x, requires_grad=True)
    ref = torch.sigmoid(torch.nn.functional.avg_pool2d(torch.tanh(ref_x), 2) * 3.0)
    (ref * torch.from_numpy(up)).sum().backward()
    assert out.array.dtype == np.float32 and tx.grad.array.dtype == np.float32
    np.testing.assert_allclose(out.array, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tx.grad.array, ref_x.grad.numpy(), rtol=1e-4, atol=1e-6)


# ---- the same bits for 1, 2 and 3 threads -----------------------------------------------------------------------

_THREADS = textwrap.dedent("""
    import numpy as np
    from layouts import channel_major as cm
    from thread_bits import digest
    from numcnn.kernels import activation as KA, activation_compiled as AC, pool as P
    from numcnn.kernels.runtime import runtime
    assert runtime.backend == "numba"
    P.avg_compiled._PART_BYTES = 8 << 10  # many plane blocks
    AC._PART = 5000  # many activation parts
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 6, 28, 28)).astype(np.float32)
    dy = cm(rng.standard_normal((20, 6, 14, 14)).astype(np.float32))
    flat = rng.standard_normal(300000).astype(np.float32)
    out = []
    for threads in (1, 2, 3):
        runtime.threads = threads
        t = KA.tanh(x)
        p = P.avg_pool2d_forward(t, (2, 2), (2, 2), (0, 0))
        g = P.avg_pool2d_backward(dy, x.shape, (2, 2), (2, 2), (0, 0))
        s = KA.sigmoid(flat)
        res = [p, g, KA.tanh_backward(g, t), KA.tanh_backward(cm(g), t), KA.sigmoid_backward(flat, s),
               P.avg_pool2d_forward(cm(x), (2, 2), (2, 2), (0, 0))]
        out.append(digest(res))
    print(" ".join(out))
""")


def test_compiled_activation_and_avg_pool_give_the_same_bits_with_1_2_and_3_threads():
    assert_same_bits_for_1_2_and_3_threads(_THREADS)
