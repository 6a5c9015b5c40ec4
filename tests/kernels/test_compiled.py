"""The compiled (Numba) backend: each compiled kernel against the NumPy kernels and the references, the same bits for
1, 2 and 3 kernel threads (in a fresh process), fork safety, lazy import and compile, and the fallback when Numba
cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from numcnn.kernels import norm as N  # noqa: E402
from numcnn.kernels import pool as P  # noqa: E402
from numcnn.kernels.pool import max_compiled  # noqa: E402
from numcnn.kernels.runtime import runtime  # noqa: E402
from thread_bits import assert_same_bits_for_1_2_and_3_threads  # noqa: E402

POOL = ((2, 2), (2, 2), (0, 0))


def _channel_major(a):
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


@pytest.mark.parametrize("shape", [(4, 6, 13, 12), (3, 5, 8, 8), (1, 1, 2, 3), (2, 3, 1, 7)])
@pytest.mark.parametrize("layout", ["nchw", "channel_major", "strided"])
def test_compiled_max_pool_is_the_index_path_to_the_bit(shape, layout):
    """Maxima, winners and gradients equal PyTorch's index semantics exactly (ties to the first maximum, NaN wins,
    -inf windows), for odd sizes (the last row/column read by no window gets 0) and every memory layout."""
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    x.flat[::7] = x.flat[1::7]  # ties
    x[0, 0, 0, :3] = np.nan
    x[-1, -1, :2, :2] = -np.inf
    if layout == "channel_major":
        x = _channel_major(x)
    elif layout == "strided":
        x = np.pad(x, ((0, 0), (0, 0), (0, 0), (0, 3)))[..., : shape[3]]
    if shape[2] < 2:
        with pytest.raises(ValueError):
            P.max_pool2d_forward(x, *POOL)
        return
    y_ref, idx = P.max_pool2d_forward(x, *POOL)
    y, arg = max_compiled.max_pool2d_argmax(x, *POOL)
    assert y.dtype == x.dtype and arg.dtype == np.uint8
    np.testing.assert_array_equal(y, y_ref)
    ho, wo = y.shape[2:]
    rows, cols = np.divmod(idx, shape[3])  # the index path's flat position -> the window tap
    np.testing.assert_array_equal(arg, (rows - 2 * np.arange(ho)[:, None]) * 2 + cols - 2 * np.arange(wo))
    for dy in (rng.standard_normal(y.shape).astype(np.float32), _channel_major(np.full(y.shape, np.inf, np.float32))):
        np.testing.assert_array_equal(max_compiled.max_pool2d_backward_argmax(dy, arg, x.shape),
                                      P.max_pool2d_backward(dy, idx, x.shape))


def test_compiled_max_pool_covers_only_what_it_says():
    assert max_compiled.supported((2, 2), (2, 2), (0, 0))
    for args in [((3, 3), (2, 2), (0, 0)), ((2, 2), (1, 1), (0, 0)), ((2, 2), (2, 2), (1, 1)),
                 ((2, 2), (2, 2), (0, 0), (2, 2))]:
        assert not max_compiled.supported(*args)
        with pytest.raises(ValueError, match="2x2 windows at stride 2 only"):
            max_compiled.max_pool2d_argmax(np.zeros((1, 1, 8, 8), np.float32), *args)
    # the training dispatch takes the NumPy pair for the rest, with the same numbers
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    with runtime.scoped(backend="numba"):
        y, saved = P.max_pool2d_train_forward(x, (3, 3), (2, 2), (1, 1))
        assert saved[0] == "values"
        y2, saved2 = P.max_pool2d_train_forward(x, *POOL)
        assert saved2[0] == "argmax"
    np.testing.assert_array_equal(y, P.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1))[0])


@pytest.mark.parametrize("shape, axes", [((6, 5, 9, 8), (0, 2, 3)), ((7, 4), (0,)), ((5, 3, 11), (0, 2)),
                                         ((1, 3, 17, 1), (0, 2, 3))])
@pytest.mark.parametrize("layout", ["nchw", "channel_major"])
def test_compiled_batch_norm_matches_numpy_float32_and_float64(shape, axes, layout):
    rng = np.random.default_rng(len(shape))
    for dtype, tol in ((np.float32, 2e-5), (np.float64, 1e-10)):
        x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        if layout == "channel_major" and len(shape) == 4:
            x, dy = _channel_major(x), _channel_major(dy)
        g, b = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
        out = {}
        for backend in ("numpy", "numba"):
            with runtime.scoped(backend=backend):
                for gamma, beta in ((g, b), (None, None)):
                    y, mean, invstd, var = N.batch_norm_train_forward(x, gamma, beta, 1e-5, axes, return_var=True)
                    dx, dgamma, dbeta = N.batch_norm_backward(dy, x, mean, invstd, gamma, axes)
                    out[backend, gamma is None] = [y, mean, invstd, var, dx, dbeta] + ([] if gamma is None
                                                                                         else [dgamma])
        for key in ((False,), (True,)):
            for a, c in zip(out[("numpy", *key)], out[("numba", *key)], strict=True):
                assert a.dtype == c.dtype == dtype
                np.testing.assert_allclose(c, a, rtol=tol * 10, atol=tol)


def test_compiled_batch_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 6, 7, 7)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    g, b = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    yt = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    yt.backward(torch.from_numpy(dy))
    with runtime.scoped(backend="numba"):
        y, mean, invstd = N.batch_norm_train_forward(x, g, b, 1e-5, (0, 2, 3))
        dx, dg, db = N.batch_norm_backward(dy, x, mean, invstd, g, (0, 2, 3))
    for ours, theirs in ((y, yt), (dx, xt.grad), (dg, gt.grad), (db, bt.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-4)


def test_import_compiles_nothing_and_a_call_reports_its_compile():
    code = ("import sys, numcnn; assert 'numba' not in sys.modules, 'import numcnn imported numba'; "
            "import numpy as np; from numcnn.kernels import jit; "
            "from numcnn.kernels.pool.max_compiled import max_pool2d_argmax; "
            "max_pool2d_argmax(np.ones((1, 1, 4, 4), np.float32), (2, 2), (2, 2), (0, 0)); "
            "r = jit.compile_report(); assert len(r) == 1 and next(iter(r)).startswith('_forward_2x2'), r")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# The training steps of tests/test_threads.py (two Adam steps), in a fresh process on the compiled kernels.
_BITS = textwrap.dedent("""
    from numcnn.kernels.runtime import runtime
    from test_threads import _train
    from thread_bits import digest
    assert runtime.backend == "numba"
    runtime.memory_budget = 64 << 10  # many chunks and blocks, so the threads really share the work
    out = []
    for threads in (1, 2, 3):
        out.append(digest(p for name in ("convnet", "lenet5", "resnet") for p in _train(name, threads)))
    print(" ".join(out))
""")


def test_two_adam_steps_give_the_same_bits_with_1_2_and_3_threads():
    assert_same_bits_for_1_2_and_3_threads(_BITS)


def test_a_forked_child_runs_compiled_kernels():
    """Compiled kernels run on numcnn's own threads, not an OpenMP pool, so a forked child (a DataLoader worker) can
    run them after its parent did."""
    code = textwrap.dedent("""
        import os, numpy as np
        from numcnn.kernels.pool.max_compiled import max_pool2d_argmax
        x = np.random.default_rng(0).standard_normal((8, 4, 6, 6)).astype(np.float32)
        y = max_pool2d_argmax(x, (2, 2), (2, 2), (0, 0))[0]
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(max_pool2d_argmax(x, (2, 2), (2, 2), (0, 0))[0], y)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        raise SystemExit(os.waitstatus_to_exitcode(status))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_without_numba_numcnn_says_so_once_and_runs_numpy(tmp_path):
    (tmp_path / "numba").mkdir()
    (tmp_path / "numba" / "__init__.py").write_text("raise ImportError('this numba is broken')\n")
    code = textwrap.dedent("""
        import warnings, numpy as np, numcnn
        from numcnn import nn
        from numcnn.kernels import jit
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            pool = nn.MaxPool2d(2)
            x = numcnn.randn(2, 3, 8, 8)
            a, b = pool(x), pool(x)
        msgs = [str(w.message) for w in seen if "compiled kernels are off" in str(w.message)]
        assert len(msgs) == 1 and "this numba is broken" in msgs[0], msgs
        assert not jit.available() and np.array_equal(a.numpy(), b.numpy())
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("NUMCNN_KERNELS", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_numcnn_kernels_env_chooses_the_backend():
    for value, expected in (("numpy", "numpy"), ("numba", "numba")):
        code = "from numcnn.kernels.runtime import runtime; print(runtime.backend, runtime.backend_explicit)"
        r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "NUMCNN_KERNELS": value},
                           capture_output=True, text=True, timeout=120, check=True)
        assert r.stdout.split() == [expected, "True"]
    r = subprocess.run([sys.executable, "-c", "import numcnn"], env={**os.environ, "NUMCNN_KERNELS": "cuda"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "NUMCNN_KERNELS must be one of ('numpy', 'numba'), got 'cuda'" in r.stderr


DW_CASES = [((3, 8, 10, 9), 3, ((1, 1), (1, 1))), ((2, 5, 7, 6), 5, ((2, 2), (0, 4))),
            ((1, 4, 3, 3), 3, ((0, 0), (0, 0))), ((2, 6, 6, 6), 2, ((0, 1), (1, 0))),
            ((1, 3, 1, 1), 3, ((1, 1), (1, 1)))]


@pytest.mark.parametrize("x_shape, k, padding", DW_CASES)
def test_compiled_depthwise_matches_the_seven_loops(x_shape, k, padding):
    from numcnn.kernels import conv as K

    rng = np.random.default_rng(k)
    c = x_shape[1]
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((c, 1, k, k)), rng.standard_normal(c)
    geo = K.ConvGeometry.of(x_shape, w.shape, (1, 1), padding, (1, 1), c)
    dy = rng.standard_normal(geo.y_shape)
    ref = (K.forward(geo, x, w, b, "reference"), K.backward_input(geo, dy, w, "reference"),
           K.backward_weight(geo, dy, x, "reference"))
    with runtime.scoped(backend="numba", memory_budget=4096):
        assert K.plan(geo) == K.Plan("depthwise", "depthwise", "depthwise")
        for p in runtime.pool.arrays():
            p.fill(np.nan)  # stale pooled memory must not leak into the padded planes
        got = (K.forward(geo, x, w, b), K.backward_input(geo, _channel_major(dy), w),
               K.backward_weight(geo, dy, _channel_major(x)))
    for a, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-10)


def test_compiled_depthwise_matches_torch_forward_backward_and_transposed():
    torch = pytest.importorskip("torch")
    import numcnn
    from numcnn.nn import functional as F

    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((4, 6, 11, 9), (6, 1, 3, 3), (6,)))
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    (torch.nn.functional.conv2d(xt, wt, bt, padding=1, groups=6) ** 2).sum().backward()
    tx, tw, tb = (numcnn.tensor(a, requires_grad=True) for a in (x, w, b))
    with runtime.scoped(backend="numba"):
        (F.conv2d(tx, tw, tb, padding=1, groups=6) ** 2).sum().backward()
        for ours, theirs in ((tx, xt), (tw, wt), (tb, bt)):
            np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-3)
        # transposed depthwise (its passes are a depthwise conv's, swapped), with a cropped output gradient
        y = F.conv_transpose2d(numcnn.tensor(x), numcnn.tensor(w), stride=1, padding=1, groups=6).numpy()
    yt = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), padding=1, groups=6)
    np.testing.assert_allclose(y, yt.numpy(), rtol=1e-4, atol=1e-4)
