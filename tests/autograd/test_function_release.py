"""The Function contract: what a forward registers with ``ctx.on_free`` is released exactly once, when the graph
frees its saved values (after backward, unless retain_graph), and convolution's pooled columns go back to the pool
that way."""

import numpy as np

import numcnn
from numcnn.autograd.function import Function
from numcnn.kernels.runtime import runtime
from numcnn.nn import functional as F


class _Keeps(Function):
    released: list = []

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.on_free(lambda: _Keeps.released.append(ctx.saved_tensors[0].shape))
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


def test_on_free_runs_once_after_backward_and_not_with_retain_graph():
    _Keeps.released = []
    x = numcnn.tensor(np.ones(3, np.float32), requires_grad=True)
    y = _Keeps.apply(x).sum()
    y.backward(retain_graph=True)
    assert _Keeps.released == []  # still needed for a second backward
    y.backward()
    assert _Keeps.released == [(3,)] and np.array_equal(x.grad.numpy(), [4, 4, 4])
    with numcnn.no_grad():
        _Keeps.apply(x)  # nothing recorded, but the forward ran: released only with a graph
    assert _Keeps.released == [(3,)]


def test_conv_columns_go_back_to_the_pool_after_backward():
    rng = np.random.default_rng(0)
    x = numcnn.tensor(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
    w = numcnn.tensor(rng.standard_normal((5, 3, 3, 3)).astype(np.float32), requires_grad=True)
    with runtime.scoped():
        runtime.pool.clear()
        y = F.conv2d(x, w, padding=1, algorithm="im2col")
        held = runtime.pool.nbytes  # the columns are lent to the graph, not in the pool
        y.sum().backward()
        cols_bytes = 3 * 9 * 4 * 64 * 4  # C*R*S x N*Ho*Wo float32: one chunk at this size
        assert runtime.pool.nbytes - held >= cols_bytes
        assert any(a.shape == (27, 256) for a in runtime.pool.arrays())


def test_the_graph_holds_no_result_that_nothing_saved():
    """The graph links nodes, not the tensors between them (as PyTorch's does): a result that no backward needs
    (batch norm's output, read by the ReLU after it, which saves its own output) is freed once the caller drops
    it, and the gradients are the same as with every result kept."""
    import gc
    import weakref

    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    grads = []
    for keep in (True, False):
        x = numcnn.tensor(x_np, requires_grad=True)
        w, b = (numcnn.tensor(np.full(3, v, np.float32), requires_grad=True) for v in (1.5, 0.5))
        h = F.batch_norm(x * 2, None, None, w, b, training=True)
        freed = weakref.ref(h.array)
        y = F.relu(h).exp().sum()
        if not keep:
            del h
            gc.collect()
            assert freed() is None
        y.backward()
        grads.append([t.grad.numpy() for t in (x, w, b)])
    for kept, dropped in zip(*grads, strict=True):
        np.testing.assert_array_equal(kept, dropped)


def test_retain_grad_on_a_result_the_graph_does_not_otherwise_hold():
    x = numcnn.tensor(np.arange(4, dtype=np.float32), requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_array_equal(h.grad.numpy(), 2 * h.numpy())
    np.testing.assert_array_equal(x.grad.numpy(), 18 * x.numpy())
