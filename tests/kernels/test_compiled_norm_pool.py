"""The compiled memory-bound passes around the convolutions (issue 12): batch norm's lane sums, max-pool 2x2's
backward in 64-bit pixel pairs, the one-pass ReLU, and softmax cross-entropy against class indices. Each against a
float64 reference (1e-10) or the NumPy kernel (bit for bit where the kernel claims it), against PyTorch in float32,
on odd shapes and layouts, with every output element written (fresh arrays filled with NaN change nothing), and the
same bits for 1, 2 and 3 kernel threads (in a fresh process)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

import numcnn  # noqa: E402
from layouts import channel_major as _channel_major  # noqa: E402
from layouts import in_layout as _layout  # noqa: E402
from numcnn.kernels import activation as KA  # noqa: E402
from numcnn.kernels import norm as N  # noqa: E402
from numcnn.kernels import parallel  # noqa: E402
from numcnn.kernels import pool as P  # noqa: E402
from numcnn.kernels import softmax as KS  # noqa: E402
from numcnn.kernels.layout import is_channel_major  # noqa: E402
from numcnn.kernels.pool import max_compiled  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from numcnn.nn import functional as F  # noqa: E402
from thread_bits import assert_same_bits_for_1_2_and_3_threads  # noqa: E402

POOL = ((2, 2), (2, 2), (0, 0))


def _compile_all():
    """Run every compiled kernel of this file once per dtype, so that none compiles while ``nan_empty`` has
    replaced np.empty (Numba would find the stand-in where kernels call np.empty)."""
    rng = np.random.default_rng(0)
    with runtime.scoped(backend="numba"):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((2, 2, 12, 12)).astype(dtype)  # rows of 144 and 4: both batch-norm kernels
            for a in (x, _channel_major(x), x[:, :, :2, :2]):
                y, mean, invstd = N.batch_norm_train_forward(a, x[0, :, 0, 0], x[0, :, 0, 0], 1e-5, (0, 2, 3))
                N.batch_norm_backward(a, a, mean, invstd, x[0, :, 0, 0], (0, 2, 3))
                N.batch_norm_train_forward(a, None, None, 1e-5, (0, 2, 3))
                N.batch_norm_backward(a, a, mean, invstd, None, (0, 2, 3))
                N.batch_norm_backward(a, a, mean, invstd, None, (0, 2, 3), relu_out=a)
            for w in (4, 5):
                y, saved = P.max_pool2d_train_forward(rng.standard_normal((2, 2, 4, w)).astype(dtype), *POOL)
                P.max_pool2d_train_backward(y, saved, *POOL)
            big = rng.standard_normal(KA._COMPILED_MIN).astype(dtype)
            KA.relu_backward(big, KA.relu(big))
            logits = rng.standard_normal((KS._COMPILED_MIN // 8, 8)).astype(dtype)
            target = np.zeros(len(logits), dtype=np.int64)
            p, _ = KS.cross_entropy_index_forward(logits, target, np.ones(len(logits)))
            KS.cross_entropy_index_backward(p, target, np.ones(len(logits)))


@pytest.fixture
def nan_empty(monkeypatch):
    """np.empty hands out arrays full of NaN (stale memory): a kernel that leaves an element unwritten shows it."""
    _compile_all()
    real = np.empty

    def empty(shape, dtype=float, order="C", **kw):
        out = real(shape, dtype=dtype, order=order, **kw)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        elif out.dtype.kind in "iu":
            out.fill(-1 if out.dtype.kind == "i" else np.iinfo(out.dtype).max)
        return out

    monkeypatch.setattr(np, "empty", empty)


# ---- batch norm -------------------------------------------------------------------------------------------------


def _bn_reference(x, dy, g, b, eps, axes):
    """Training batch norm forward and backward in float64, straight from the formulas."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    shape = [1] * x.ndim
    c_axis = next(i for i in range(x.ndim) if i not in axes)
    shape[c_axis] = -1
    n = x.size // x.shape[c_axis]
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    invstd = 1 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    y = xhat * g.reshape(shape) + b.reshape(shape)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = (g * invstd).reshape(shape) * (dy - (dbeta / n).reshape(shape) - xhat * (dgamma / n).reshape(shape))
    return y, mean, invstd, var, dx, dgamma, dbeta


BN_SHAPES = [((6, 5, 9, 8), (0, 2, 3)), ((1, 3, 17, 5), (0, 2, 3)), ((7, 4, 1, 1), (0, 2, 3)), ((9, 3), (0,)),
             ((5, 3, 11), (0, 2)), ((3, 2, 130, 3), (0, 2, 3)), ((2, 70, 1, 1), (0, 2, 3))]


@pytest.mark.parametrize("shape, axes", BN_SHAPES)
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
@pytest.mark.parametrize("block_bytes", [1 << 20, 256])
def test_compiled_batch_norm_matches_the_float64_formulas(shape, axes, layout, block_bytes, nan_empty, monkeypatch):
    """Both kernels (a channel's lanes along long rows, "across" the channels for rows shorter than LANES), in one
    channel block and in many (block_bytes: blocks that start past channel 0)."""
    monkeypatch.setattr(parallel, "CACHE_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(len(shape) + shape[0])
    x = _layout(rng.standard_normal(shape) * 3 + 100, layout)  # a large mean: the two-pass variance matters
    dy = _layout(rng.standard_normal(shape), layout)
    g, b = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    ref = _bn_reference(x, dy, g, b, 1e-5, axes)
    with runtime.scoped(backend="numba"):
        y, mean, invstd, var = N.batch_norm_train_forward(x, g, b, 1e-5, axes, return_var=True)
        dx, dgamma, dbeta = N.batch_norm_backward(dy, x, mean, invstd, g, axes)
    for ours, theirs in zip((y, mean, invstd, var, dx, dgamma, dbeta), ref, strict=True):
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape, axes", BN_SHAPES)
@pytest.mark.parametrize("x_layout, g_layout", [("nchw", "nchw"), ("channel_major", "channel_major"),
                                                ("channel_major", "nchw"), ("strided", "strided")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_batch_norm_backward_after_relu_is_relu_backward_then_backward_to_the_bit(shape, axes, x_layout, g_layout,
                                                                                  dtype, backend, nan_empty,
                                                                                  monkeypatch):
    """``relu_out``: the gradient of a ReLU's output read through the ReLU's selection inside the kernels gives the
    bits of ``relu_backward`` then the plain backward (-0.0 and NaN gradients where the ReLU is off, a NaN output
    where it lets the gradient through), in one channel block and in many."""
    monkeypatch.setattr(parallel, "CACHE_BLOCK_BYTES", 256)
    rng = np.random.default_rng(sum(shape))
    x = _layout((rng.standard_normal(shape) * 3 + 1).astype(dtype), x_layout)
    w = rng.standard_normal(shape[1]).astype(dtype)
    with runtime.scoped(backend=backend):
        y, mean, invstd = N.batch_norm_train_forward(x, w, None, 1e-5, axes)
        r = KA.relu(y)
        r[(0,) * r.ndim] = np.nan  # a NaN output lets its gradient through, as relu_backward does
        off = np.asarray(r <= 0)
        g = rng.standard_normal(shape).astype(dtype)
        k = np.arange(g.size).reshape(shape) % 3
        g[off & (k == 0)] = np.nan  # masked by the ReLU
        g[k == 1] = -0.0  # masked or passed through
        g = _layout(g, g_layout)
        assert np.isfinite(KA.relu_backward(g, r)[1:]).all()
        for gamma in (w, None):
            fused = N.batch_norm_backward(g, x, mean, invstd, gamma, axes, relu_out=r)
            plain = N.batch_norm_backward(KA.relu_backward(g, r), x, mean, invstd, gamma, axes)
            for ours, theirs in zip(fused, plain, strict=True):
                if theirs is None:
                    assert ours is None
                    continue
                assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape
                uint = np.uint32 if dtype == np.float32 else np.uint64
                np.testing.assert_array_equal(np.ascontiguousarray(ours).view(uint),
                                              np.ascontiguousarray(theirs).view(uint))


def test_compiled_batch_norm_matches_torch_float32_values_and_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for shape in ((8, 6, 7, 7), (1, 4, 5, 3), (10, 3, 1, 1)):
        x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        g, b = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
        xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
        torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5).backward(torch.from_numpy(dy))
        yt = torch.nn.functional.batch_norm(xt.detach(), None, None, gt.detach(), bt.detach(), training=True, eps=1e-5)
        with runtime.scoped(backend="numba"):
            xn, gn, bn = (numcnn.tensor(a, requires_grad=True) for a in (_channel_major(x), g, b))
            y = F.batch_norm(xn, None, None, gn, bn, training=True, eps=1e-5)
            y.backward(numcnn.tensor(dy))
        assert y.numpy().dtype == np.float32 and xn.grad.numpy().dtype == np.float32
        for ours, theirs in ((y, yt), (xn.grad, xt.grad), (gn.grad, gt.grad), (bn.grad, bt.grad)):
            np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_compiled_batch_norm_without_affine_and_float32_stays_float32():
    rng = np.random.default_rng(2)
    x = _channel_major(rng.standard_normal((4, 3, 6, 6)).astype(np.float32))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = {}
    for backend in ("numpy", "numba"):
        with runtime.scoped(backend=backend):
            y, mean, invstd = N.batch_norm_train_forward(x, None, None, 1e-5, (0, 2, 3))
            dx, dgamma, dbeta = N.batch_norm_backward(dy, x, mean, invstd, None, (0, 2, 3))
        assert dgamma is None and {a.dtype for a in (y, mean, invstd, dx, dbeta)} == {np.dtype(np.float32)}
        assert is_channel_major(y) and is_channel_major(dx)  # the conv output's layout is kept
        out[backend] = (y, mean, invstd, dx, dbeta)
    for a, c in zip(out["numpy"], out["numba"], strict=True):
        np.testing.assert_allclose(c, a, rtol=2e-5, atol=2e-5)


# ---- max pooling ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 6, 13, 12), (3, 5, 8, 8), (1, 1, 2, 2), (2, 3, 7, 9), (2, 2, 9, 2)])
@pytest.mark.parametrize("x_layout, dy_layout", [("nchw", "nchw"), ("channel_major", "channel_major"),
                                                 ("channel_major", "nchw"), ("nchw", "channel_major"),
                                                 ("strided", "strided")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_max_pool_backward_is_the_index_path_to_the_bit(shape, x_layout, dy_layout, dtype, nan_empty):
    """The pairs kernel (float32, even width) and the generic one give PyTorch's index semantics bit for bit (NaN
    payloads, -0.0 and inf in dy pass unchanged), every dx element written, in the forward input's layout."""
    rng = np.random.default_rng(sum(shape))
    x = np.maximum(rng.standard_normal(shape), 0).astype(dtype)  # ties at 0, as after a ReLU
    x[0, 0, 0, :2] = np.nan
    x = _layout(x, x_layout)
    y_ref, idx = P.max_pool2d_forward(np.ascontiguousarray(x), *POOL)
    with runtime.scoped(backend="numba"):
        y, saved = P.max_pool2d_train_forward(x, *POOL)
        assert saved[0] == "argmax"
        np.testing.assert_array_equal(y, y_ref)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dy.flat[::5] = -0.0
        dy.flat[1::7] = np.inf
        dy.view(np.uint32 if dtype == np.float32 else np.uint64).flat[2::9] |= 0x7F800001 if dtype == np.float32 \
            else 0x7FF0000000000001  # NaNs with payloads
        dy = _layout(dy, dy_layout)
        dx = P.max_pool2d_train_backward(dy, saved, *POOL)
    n, c, h, w = x.shape
    ref = np.zeros((n * c, h * w), dtype=dtype)  # the index path, by assignment (np.add.at turns -0.0 into 0.0)
    ref[np.arange(n * c)[:, None], idx.reshape(n * c, -1)] = np.ascontiguousarray(dy).reshape(n * c, -1)
    ref = ref.reshape(x.shape)
    with np.errstate(invalid="ignore"):  # np.add.at meets the NaNs of dy
        np.testing.assert_array_equal(P.max_pool2d_backward(np.ascontiguousarray(dy), idx, x.shape), ref)
    assert dx.dtype == dtype and dx.shape == x.shape
    uint = np.uint32 if dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(np.ascontiguousarray(dx).view(uint), ref.view(uint))
    assert is_channel_major(dx) == is_channel_major(x)


def test_compiled_max_pool_matches_torch_and_ceil_mode_odd_sizes_run_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = _channel_major(rng.standard_normal((3, 4, 10, 12)).astype(np.float32))
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    yt = torch.nn.functional.max_pool2d(xt, 2)
    dy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(dy))
    with runtime.scoped(backend="numba"):
        xn = numcnn.tensor(x, requires_grad=True)
        yn = F.max_pool2d(xn, 2)
        yn.backward(numcnn.tensor(dy))
    np.testing.assert_array_equal(yn.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(xn.grad.numpy(), xt.grad.numpy())
    # ceil_mode with an odd size adds a window the 2x2 kernel does not clip: the NumPy pair runs (it read past the
    # edge before); with even sizes ceil_mode changes nothing and the compiled kernel runs
    assert not max_compiled.supported((2, 2), (2, 2), (0, 0), (1, 1), True)
    for h, w in ((5, 6), (6, 6), (6, 7), (7, 7), (8, 4)):
        x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
        with runtime.scoped(backend="numba"):
            y, saved = P.max_pool2d_train_forward(x, *POOL, (1, 1), True)
        assert saved[0] == ("values" if h % 2 or w % 2 else "argmax")
        np.testing.assert_array_equal(y, torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, ceil_mode=True))


# ---- ReLU -------------------------------------------------------------------------------------------------------


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("shape", [(40, 16, 11, 13), (1, 70000), (300, 301), (5, 3, 4, 4)])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_is_the_numpy_relu_to_the_bit(shape, layout, dtype, nan_empty):
    """NaN stays NaN, -0.0 becomes 0, dy is zeroed where y <= 0 even when it is NaN; the output keeps x's layout;
    small and non-dense arrays run NumPy (the same bits either way)."""
    rng = np.random.default_rng(shape[0])
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::11] = np.nan
    x.flat[1::13] = -0.0
    x.flat[2::17] = -np.inf
    dy = rng.standard_normal(shape).astype(dtype)
    dy.flat[::7] = np.nan
    x, dy = _layout(x, layout), _layout(dy, layout)
    out = {}
    for backend in ("numpy", "numba"):
        with runtime.scoped(backend=backend):
            y = KA.relu(x)
            out[backend] = (y, KA.relu_backward(dy, y))
            assert y.strides == out["numpy"][0].strides
    for a, c in zip(out["numpy"], out["numba"], strict=True):
        assert a.dtype == c.dtype == dtype
        np.testing.assert_array_equal(_bits(c), _bits(a))


def test_compiled_relu_mixed_layouts_and_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x = _channel_major(rng.standard_normal((50, 8, 14, 14)).astype(np.float32))
    dy = rng.standard_normal(x.shape).astype(np.float32)  # NCHW against a channel-major y: NumPy runs
    with runtime.scoped(backend="numba"):
        xn = numcnn.tensor(x, requires_grad=True)
        yn = F.relu(xn)
        yn.backward(numcnn.tensor(dy))
        assert is_channel_major(yn.numpy())
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    torch.relu(xt).backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(yn.numpy(), torch.relu(torch.from_numpy(np.ascontiguousarray(x))).numpy())
    np.testing.assert_array_equal(xn.grad.numpy(), xt.grad.numpy())


# ---- softmax cross-entropy --------------------------------------------------------------------------------------


def _ce_reference(x, t, w, valid):
    """Per-sample losses and dloss_i/dx_i (unreduced, weight 1 upstream) in float64."""
    x = x.astype(np.float64)
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(t))
    tv = np.where(valid, t, 0)
    per = np.where(valid, -w * logp[rows, tv], 0)
    grad = np.exp(logp)
    grad[rows, tv] -= 1
    grad *= np.where(valid, w, 0)[:, None]
    return per, grad


@pytest.mark.parametrize("shape", [(256, 1000), (3, 7000), (20000, 1), (130, 129)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_cross_entropy_kernels_match_float64(shape, dtype, nan_empty):
    rng = np.random.default_rng(shape[1])
    m, c = shape
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    x[0, 0] = -1e4  # exp underflows to 0
    x[-1, -1] = 50.0
    t = rng.integers(0, c, m)
    valid = rng.random(m) > 0.2
    w = rng.random(m) + 0.5
    per_ref, grad_ref = _ce_reference(x, t, w, valid)
    with runtime.scoped(backend="numba"):
        assert KS.cross_entropy_index_supported(x)
        p, per = KS.cross_entropy_index_forward(x, np.where(valid, t, -1), np.where(valid, w, 0))
        dx = KS.cross_entropy_index_backward(p, np.where(valid, t, -1), np.where(valid, w, 0))
    assert p.dtype == per.dtype == dx.dtype == dtype
    tol = 1e-10 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(per, per_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, grad_ref, rtol=tol, atol=tol)
    if dtype == np.float64:  # NumPy's exp over a float64 sum
        z = x - x.max(axis=1, keepdims=True)
        np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-14, atol=1e-300)


def test_compiled_cross_entropy_non_finite_logits_give_nan_rows_like_numpy():
    x = np.random.default_rng(0).standard_normal((64, 300))
    x[1, 5], x[2, 7], x[3, :] = np.nan, np.inf, -np.inf
    t = np.zeros(64, dtype=np.int64)
    with runtime.scoped(backend="numba"):
        p, per = KS.cross_entropy_index_forward(x, t, np.ones(64))
    with np.errstate(invalid="ignore"):
        logp = KS.log_softmax(x, 1)
    for row in (1, 2, 3):
        assert np.isnan(per[row]) and np.isnan(p[row]).all() and np.isnan(logp[row, 0])
    assert np.isfinite(per[4:]).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted, ignore_index", [(False, -100), (True, -100), (True, 3), (False, 3)])
def test_compiled_cross_entropy_matches_torch(reduction, weighted, ignore_index):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    for shape in ((256, 100), (16, 50, 3, 7)):
        c = shape[1]
        x = (rng.standard_normal(shape) * 3).astype(np.float32)
        t = rng.integers(0, c, (shape[0],) + shape[2:])
        t.flat[::4] = 3
        w = (rng.random(c) + 0.5).astype(np.float32) if weighted else None
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t), None if w is None else torch.from_numpy(w),
                                               ignore_index=ignore_index, reduction=reduction)
        up = rng.standard_normal(tuple(lt.shape)).astype(np.float32)
        lt.backward(torch.from_numpy(up))
        with runtime.scoped(backend="numba"):
            xn = numcnn.tensor(x, requires_grad=True)
            ln = F.cross_entropy(xn, numcnn.tensor(t), None if w is None else numcnn.tensor(w),
                                 ignore_index=ignore_index, reduction=reduction)
            ln.backward(numcnn.tensor(up))
        assert ln.numpy().dtype == np.float32 and xn.grad.numpy().dtype == np.float32
        np.testing.assert_allclose(ln.numpy(), lt.detach().numpy(), rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(xn.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_cross_entropy_takes_the_compiled_pass_only_where_it_pays():
    x = np.zeros((100, 10), np.float32)
    with runtime.scoped(backend="numba"):
        assert not KS.cross_entropy_index_supported(x)  # batch 100 x 10 classes: the NumPy loss
        assert KS.cross_entropy_index_supported(np.zeros((256, 1000), np.float32))
        assert not KS.cross_entropy_index_supported(np.zeros((256, 1000), np.float16))
    with runtime.scoped(backend="numpy"):
        assert not KS.cross_entropy_index_supported(np.zeros((256, 1000), np.float32))


# ---- the same bits for 1, 2 and 3 threads -----------------------------------------------------------------------

_THREADS = textwrap.dedent("""
    import numpy as np
    from layouts import channel_major as cm
    from thread_bits import digest
    from numcnn.kernels import activation as KA, norm as N, parallel, pool as P, softmax as KS
    from numcnn.kernels.runtime import runtime
    assert runtime.backend == "numba"
    parallel.CACHE_BLOCK_BYTES = 8 << 10  # many channel blocks and plane blocks
    KA._PART = 5000  # many ReLU parts
    KS._ROWS_PART = 3000  # many row parts
    rng = np.random.default_rng(0)
    x = cm(rng.standard_normal((20, 12, 14, 14)).astype(np.float32))
    dy = cm(rng.standard_normal(x.shape).astype(np.float32))
    g, b = rng.standard_normal(12).astype(np.float32), rng.standard_normal(12).astype(np.float32)
    x1 = (rng.standard_normal((300, 40)) * 2 + 5).astype(np.float32)  # BatchNorm1d: the "across" kernels
    dy1 = rng.standard_normal(x1.shape).astype(np.float32)
    logits = rng.standard_normal((300, 120)).astype(np.float32)
    target = rng.integers(-1, 120, 300)
    out = []
    for threads in (1, 2, 3):
        runtime.threads = threads
        y, mean, invstd = N.batch_norm_train_forward(x, g, b, 1e-5, (0, 2, 3))
        res = [y, mean, invstd, *N.batch_norm_backward(dy, x, mean, invstd, g, (0, 2, 3))]
        y1, mean1, invstd1 = N.batch_norm_train_forward(x1, g[:1].repeat(40), b[:1].repeat(40), 1e-5, (0,))
        res += [y1, mean1, invstd1, *N.batch_norm_backward(dy1, x1, mean1, invstd1, g[:1].repeat(40), (0,))]
        r = KA.relu(y)
        res += [r, KA.relu_backward(dy, r), *N.batch_norm_backward(dy, x, mean, invstd, g, (0, 2, 3), relu_out=r)]
        r1 = KA.relu(y1)
        res += [*N.batch_norm_backward(dy1, x1, mean1, invstd1, None, (0,), relu_out=r1)]
        pooled, saved = P.max_pool2d_train_forward(r, (2, 2), (2, 2), (0, 0))
        res += [pooled, P.max_pool2d_train_backward(pooled * 3, saved, (2, 2), (2, 2), (0, 0))]
        p, per = KS.cross_entropy_index_forward(logits, target, np.ones(300))
        res += [p, per, KS.cross_entropy_index_backward(p, target, np.full(300, 0.5))]
        out.append(digest(res))
    print(" ".join(out))
""")


def test_compiled_norm_pool_relu_loss_give_the_same_bits_with_1_2_and_3_threads():
    assert_same_bits_for_1_2_and_3_threads(_THREADS)
