"""The kernels' scratch pool and memory budget: reuse, chunking over the batch, and that neither ever changes a
result or leaks pooled memory to a caller (checked against the naive convolution and PyTorch)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numcnn.kernels import conv as K
from numcnn.kernels import workspace
from numcnn.kernels.runtime import runtime


@pytest.fixture
def budget():
    """Set the budget for one test and restore the default afterwards."""

    def set_budget(nbytes):
        runtime.memory_budget = nbytes

    with runtime.scoped():
        yield set_budget


def test_take_give_reuses_by_shape_and_dtype():
    runtime.pool.clear()
    a = workspace.take((3, 4), np.float32)
    assert a.shape == (3, 4) and a.dtype == np.float32 and a.flags.c_contiguous
    workspace.give(a)
    workspace.give(a)  # a second give must not file it twice (two takers would share it)
    assert runtime.pool.nbytes == a.nbytes
    assert workspace.take((4, 3), np.float32) is not a
    assert workspace.take((3, 4), np.float64) is not a
    assert workspace.take((3, 4), np.float32) is a
    assert workspace.take((3, 4), np.float32) is not a  # lent once only
    assert runtime.pool.nbytes == 0


def test_pool_forgets_oldest_arrays_beyond_its_limit(budget):
    budget(1000)
    workspace.give(np.empty(500, dtype=np.uint8))
    workspace.give(np.empty(600, dtype=np.uint8))
    workspace.give(np.empty(3000, dtype=np.uint8))
    workspace.give(np.empty(5000, dtype=np.uint8))  # over the limit on its own: not kept
    assert runtime.pool.nbytes <= runtime.pool_limit() == 4000
    assert runtime.pool.nbytes == 3600  # the 500 bytes filed first went first


def test_chunk_size_is_a_function_of_shape_and_budget(budget):
    budget(1000)
    assert workspace.chunk_size(10, 300) == 3
    assert workspace.chunk_size(10, 5000) == 1  # never zero
    assert workspace.chunk_size(2, 100) == 2  # never more than the batch
    with pytest.raises(ValueError, match="positive"):
        budget(0)


CASES = {
    # name: (x shape, w shape, stride, padding, dilation, groups)
    "5x5-pad2-stride1": ((5, 3, 7, 6), (4, 3, 5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "3x3-stride2-asym": ((5, 2, 8, 7), (3, 2, 3, 3), (2, 2), ((1, 0), (0, 1)), (1, 1), 1),
    "dilated-grouped": ((4, 4, 9, 8), (6, 2, 3, 2), (1, 1), ((2, 1), (1, 1)), (2, 1), 2),
    "depthwise-stride": ((3, 3, 6, 6), (3, 1, 3, 3), (2, 1), ((1, 1), (1, 1)), (1, 1), 3),
    "depthwise-dilated": ((3, 4, 7, 6), (4, 1, 3, 2), (1, 1), ((1, 2), (0, 1)), (1, 2), 4),
}


def _arrays(seed, xs, ws, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(xs).astype(dtype), rng.standard_normal(ws).astype(dtype)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("budget_bytes", [1, 700, 1 << 30])
def test_chunked_conv_matches_naive_and_is_deterministic(budget, name, budget_bytes):
    """A budget of 1 byte forces one sample per chunk; 1 GiB gives a single chunk with kept columns."""
    xs, ws, stride, padding, dilation, groups = CASES[name]
    x, w = _arrays(0, xs, ws)
    g = (stride, padding, dilation, groups)
    y_ref = K.conv2d_forward(x, w, None, *g, algorithm="naive")
    dy = np.random.default_rng(1).standard_normal(y_ref.shape)
    dx_ref = K.conv2d_backward_input(dy, w, x.shape, *g, algorithm="naive")
    dw_ref = K.conv2d_backward_weight(dy, x, w.shape, *g, algorithm="naive")

    budget(budget_bytes)
    y, cols = K.conv2d_forward(x, w, None, *g, return_cols=True)
    assert (cols is None) == (budget_bytes < 1 << 30)  # columns are kept only when one chunk holds them
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dk = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)  # laid out like y
    for d in (dy, dk):
        dx = K.conv2d_backward_input(d, w, x.shape, *g)
        dw = K.conv2d_backward_weight(d, x, w.shape, *g, cols=cols)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12)
        # same settings, same bits, however warm the pool is
        np.testing.assert_array_equal(K.conv2d_backward_input(d, w, x.shape, *g), dx)
        np.testing.assert_array_equal(K.conv2d_backward_weight(d, x, w.shape, *g, cols=cols), dw)
    np.testing.assert_array_equal(K.conv2d_forward(x, w, None, *g), y)


@pytest.mark.parametrize("name", CASES)
def test_results_never_share_memory_with_the_pool(budget, name):
    xs, ws, stride, padding, dilation, groups = CASES[name]
    x, w = _arrays(2, xs, ws, np.float32)
    g = (stride, padding, dilation, groups)
    budget(600)  # several chunks, so every scratch array goes through the pool
    runtime.pool.clear()
    y = K.conv2d_forward(x, w, None, *g)
    dy = np.ones(y.shape, np.float32)
    outs = [y, K.conv2d_backward_input(dy, w, x.shape, *g), K.conv2d_backward_weight(dy, x, w.shape, *g)]
    kept = [a.copy() for a in outs]
    pooled = runtime.pool.arrays()
    assert pooled, "the kernels gave their scratch arrays back"
    for out in outs:
        assert not any(np.shares_memory(out, p) for p in pooled)
    # scribbling over every pooled array leaves the results alone
    for p in pooled:
        p.fill(np.nan)
    K.conv2d_forward(x, w, None, *g)
    for out, copy in zip(outs, kept):
        np.testing.assert_array_equal(out, copy)


def _budget(nbytes):
    return runtime.scoped(memory_budget=nbytes)


@given(seed=st.integers(0, 2**16), budget_bytes=st.sampled_from([1, 2000, 1 << 30]))
def test_float32_chunked_matches_torch(seed, budget_bytes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    tx, tw = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, padding=1)
    dy = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy))
    g = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    with _budget(budget_bytes):
        y, cols = K.conv2d_forward(x, w, None, *g, return_cols=True)
        dx = K.conv2d_backward_input(dy, w, x.shape, *g)
        dw = K.conv2d_backward_weight(dy, x, w.shape, *g, cols=cols)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-4, atol=2e-3)


def test_layer_called_twice_then_backward_matches_torch(budget):
    """Two forward calls of one layer before one backward: the second call's scratch reuse must not disturb
    what the first call kept for its backward (columns or input), at every budget."""
    torch = pytest.importorskip("torch")
    import numcnn
    from numcnn import nn

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    t_conv = torch.nn.Conv2d(3, 3, 3, padding=1)
    tx = torch.from_numpy(x).requires_grad_()
    ty = t_conv(torch.tanh(t_conv(tx)))
    (ty * ty).sum().backward()
    for budget_bytes in (1, 3000, 1 << 30):
        budget(budget_bytes)
        conv = nn.Conv2d(3, 3, 3, padding=1)
        conv.load_state_dict({k: v.detach().numpy().copy() for k, v in t_conv.state_dict().items()})
        xt = numcnn.tensor(x, requires_grad=True)
        y = conv(nn.functional.tanh(conv(xt)))
        (y * y).sum().backward()
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(conv.weight.grad.numpy(), t_conv.weight.grad.numpy(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(conv.bias.grad.numpy(), t_conv.bias.grad.numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("padding", [((1, 1), (1, 1)), ((0, 2), (2, 1)), ((0, 0), (0, 0))])
def test_rowshift_never_reads_stale_pool_memory(budget, padding):
    """rowshift zeroes only the borders of its pooled grids: results must not change when every pooled array
    holds NaN from an earlier call."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 6, 7, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    g = ((1, 1), padding, (1, 1), 2)
    budget(3000)  # several chunks
    y = K.conv2d_forward(x, w, None, *g, algorithm="rowshift")
    dy = np.cos(y)
    first = [y, K.conv2d_backward_input(dy, w, x.shape, *g, algorithm="rowshift"),
             K.conv2d_backward_weight(dy, x, w.shape, *g, algorithm="rowshift")]
    pooled = runtime.pool.arrays()
    assert pooled
    for p in pooled:
        p.fill(np.nan)
    again = [K.conv2d_forward(x, w, None, *g, algorithm="rowshift"),
             K.conv2d_backward_input(dy, w, x.shape, *g, algorithm="rowshift"),
             K.conv2d_backward_weight(dy, x, w.shape, *g, algorithm="rowshift")]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    ref = K.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, *g, algorithm="naive")
    np.testing.assert_allclose(first[0], ref, rtol=1e-4, atol=1e-4)
