"""The Tensor's operators and autograd, value for value and gradient for gradient against PyTorch."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numcnn as nc

torch = pytest.importorskip("torch")


def run_both(fn_nc, fn_torch, *arrays, grad=True, rtol=1e-5, atol=1e-6):
    """Apply both functions to the same float arrays; compare outputs and the gradients of every input for a
    random upstream gradient. Returns the numcnn output."""
    xs = [nc.tensor(a.copy(), requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    ts = [torch.tensor(a.copy(), requires_grad=grad and a.dtype.kind == "f") for a in arrays]
    y, yt = fn_nc(*xs), fn_torch(*ts)
    assert y.shape == tuple(yt.shape)
    assert y.dtype == np.dtype(str(yt.dtype).replace("torch.", ""))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=rtol, atol=atol)
    if grad and y.requires_grad:
        g = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
        (y * nc.tensor(g)).sum().backward()
        (yt * torch.tensor(g)).sum().backward()
        for x, t in zip(xs, ts):
            if t.requires_grad:
                assert x.grad is not None and x.grad.dtype == x.dtype
                np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=rtol * 10, atol=atol * 10)
    return y


def f32(*shape, seed=0, low=-2, high=2):
    return np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)


# shapes that broadcast against each other: (a, b) pairs
BROADCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 3)), ((5, 1), (1, 6))]


@pytest.mark.parametrize("sa,sb", BROADCAST)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_binary_broadcast(op, sa, sb):
    a, b = f32(*sa, seed=1), f32(*sb, seed=2, low=0.5, high=2)
    fn = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
          "div": lambda x, y: x / y}[op]
    run_both(fn, fn, a, b)


@pytest.mark.parametrize("scalar", [2, 0.5, -3.0])
def test_scalar_operands_keep_float32(scalar):
    a = f32(3, 4)
    for fn in (lambda x: x + scalar, lambda x: scalar - x, lambda x: x * scalar, lambda x: scalar / (x + 3),
               lambda x: x / scalar, lambda x: (x + 3) ** scalar, lambda x: -x):
        y = run_both(fn, fn, a)
        assert y.dtype == np.float32


def test_pow_tensor_exponent_and_rpow():
    a, b = f32(3, 4, low=0.5, high=2), f32(3, 4, seed=3)
    run_both(lambda x, y: x**y, lambda x, y: x**y, a, b)
    run_both(lambda x: 2.0**x, lambda x: 2.0**x, b)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)),
                                   ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2))])
def test_matmul(sa, sb):
    run_both(lambda x, y: x @ y, lambda x, y: x @ y, f32(*sa), f32(*sb, seed=5))


@pytest.mark.parametrize("name", ["exp", "log", "sqrt", "abs", "neg", "relu", "sigmoid", "tanh"])
def test_unary(name):
    a = f32(4, 5, low=0.1, high=3) if name in ("log", "sqrt") else f32(4, 5)
    run_both(lambda x: getattr(x, name)(), lambda x: getattr(x, name)(), a)


def test_clamp_gradient_at_the_bounds_is_one():
    a = np.array([-2.0, -1.0, 0.0, 1.0, 2.0], dtype=np.float32)
    run_both(lambda x: x.clamp(-1, 1), lambda x: x.clamp(-1, 1), a)
    run_both(lambda x: x.clamp(min=0.5), lambda x: x.clamp(min=0.5), a)
    run_both(lambda x: x.clamp(max=0.5), lambda x: x.clamp(max=0.5), a)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_reductions(shape, data):
    a = f32(*shape, seed=len(shape))
    dim = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    keep = data.draw(st.booleans())
    if dim is None:
        run_both(lambda x: x.sum(), lambda x: x.sum(), a)
        run_both(lambda x: x.mean(), lambda x: x.mean(), a)
        run_both(lambda x: x.max(), lambda x: x.max(), a)
        run_both(lambda x: x.min(), lambda x: x.min(), a)
    else:
        run_both(lambda x: x.sum(dim, keepdim=keep), lambda x: x.sum(dim, keepdim=keep), a)
        run_both(lambda x: x.mean(dim, keepdim=keep), lambda x: x.mean(dim, keepdim=keep), a)
        run_both(lambda x: x.max(dim, keepdim=keep)[0], lambda x: x.max(dim, keepdim=keep)[0], a)
        run_both(lambda x: x.min(dim, keepdim=keep).values, lambda x: x.min(dim, keepdim=keep).values, a)
        v, i = nc.tensor(a).max(dim, keepdim=keep)
        vt, it = torch.tensor(a).max(dim, keepdim=keep)
        np.testing.assert_array_equal(i.numpy(), it.numpy())
        assert i.dtype == np.int64
        np.testing.assert_array_equal(nc.tensor(a).argmax(dim).numpy(), torch.tensor(a).argmax(dim).numpy())


def test_max_ties_share_gradient_like_torch():
    a = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 3.0]], dtype=np.float32)
    run_both(lambda x: x.max(), lambda x: x.max(), a)  # full reduction: split evenly among ties
    run_both(lambda x: x.max(1)[0], lambda x: x.max(1)[0], a)  # along a dim: to the returned index


def test_var_std():
    a = f32(3, 5)
    run_both(lambda x: x.var(), lambda x: x.var(), a)
    run_both(lambda x: x.var(1, unbiased=False), lambda x: x.var(1, unbiased=False), a)
    run_both(lambda x: x.std(0, keepdim=True), lambda x: x.std(0, keepdim=True), a)


def test_full_reductions_return_shape_scalar():
    x = nc.randn(3, 4)
    assert x.sum().shape == () and x.mean().shape == () and x.max().shape == ()


def test_shape_ops():
    a = f32(2, 3, 4)
    run_both(lambda x: x.reshape(4, -1), lambda x: x.reshape(4, -1), a)
    run_both(lambda x: x.view(6, 4), lambda x: x.view(6, 4), a)
    run_both(lambda x: x.flatten(), lambda x: x.flatten(), a)
    run_both(lambda x: x.flatten(1), lambda x: x.flatten(1), a)
    run_both(lambda x: x.transpose(0, 2), lambda x: x.transpose(0, 2), a)
    run_both(lambda x: x.permute(2, 0, 1), lambda x: x.permute(2, 0, 1), a)
    run_both(lambda x: x.unsqueeze(1).squeeze(1), lambda x: x.unsqueeze(1).squeeze(1), a)
    run_both(lambda x: x.unsqueeze(-1), lambda x: x.unsqueeze(-1), a)
    run_both(lambda x: x[:, :1].squeeze(), lambda x: x[:, :1].squeeze(), a)
    run_both(lambda x: x[:, :1].expand(2, 5, 4), lambda x: x[:, :1].expand(2, 5, 4), a)


def test_indexing_and_repeated_indices_accumulate():
    a = f32(5, 4)
    run_both(lambda x: x[1:4, ::2], lambda x: x[1:4, ::2], a)
    run_both(lambda x: x[[0, 0, 3]], lambda x: x[[0, 0, 3]], a)
    run_both(lambda x: x[:, -1], lambda x: x[:, -1], a)
    run_both(lambda x: x[x > 0], lambda x: x[x > 0], a)
    idx = np.array([4, 1, 1])
    run_both(lambda x: x[nc.tensor(idx), 2], lambda x: x[torch.tensor(idx), 2], a)


def test_cat_stack_where():
    a, b = f32(2, 3), f32(4, 3, seed=7)
    run_both(lambda x, y: nc.cat([x, y], 0), lambda x, y: torch.cat([x, y], 0), a, b)
    run_both(lambda x, y: nc.cat([x, y.reshape(2, 6)], dim=1), lambda x, y: torch.cat([x, y.reshape(2, 6)], 1), a, b)
    c = f32(2, 3, seed=8)
    run_both(lambda x, y: nc.stack([x, y], 1), lambda x, y: torch.stack([x, y], 1), a, c)
    run_both(lambda x, y: nc.where(x > 0, x, y), lambda x, y: torch.where(x > 0, x, y), a, c)


def test_comparisons_have_no_grad():
    x = nc.randn(3, requires_grad=True)
    for c in (x > 0, x < 0, x >= 0, x <= 0, x == x, x != 0):
        assert c.dtype == np.bool_ and not c.requires_grad


def test_gradient_accumulates_when_a_tensor_is_used_twice():
    x = nc.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x + x  # x used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 1)
    (x * 2).sum().backward()  # a second backward adds to .grad, as in PyTorch
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_x_plus_x_gives_two_independent_grad_arrays():
    a = nc.tensor([1.0, 2.0], requires_grad=True)
    b = nc.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.data[0] = 100.0  # mutating one grad must not change the other
    assert b.grad.numpy().tolist() == [1.0, 1.0]


def test_deep_graph_has_no_recursion_limit():
    x = nc.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**20000], rtol=1e-3)


def test_diamond_graph():
    # x -> a, b -> c: the gradient through both paths, in topological order
    run_both(lambda x: x.exp() * (x * 3), lambda x: x.exp() * (x * 3), f32(4))


def test_no_grad_and_detach():
    x = nc.randn(3, requires_grad=True)
    with nc.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert not x.detach().requires_grad
    assert np.shares_memory(x.detach().numpy(), x.numpy())

    @nc.no_grad()
    def f(t):
        return t * 3

    assert not f(x).requires_grad
    assert nc.is_grad_enabled()


def test_second_backward_without_retain_graph_raises():
    x = nc.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 4 * x.numpy())
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_needs_scalar_or_gradient():
    x = nc.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(nc.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), [2, 2, 2])


def test_retain_grad_on_non_leaf():
    x = nc.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), 2 * h.numpy())


def test_tensor_constructor_dtypes():
    assert nc.tensor([1.0, 2.0]).dtype == np.float32
    assert nc.tensor(3.5).dtype == np.float32
    assert nc.tensor([1, 2]).dtype == np.int64
    assert nc.tensor(np.arange(3)).dtype == np.int64  # an ndarray keeps its dtype
    assert nc.tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64
    assert nc.tensor([1, 2], dtype=nc.float32).dtype == np.float32
    assert nc.tensor([True]).dtype == np.bool_
    labels = np.array([3, 1])
    assert nc.tensor(labels).long().dtype == np.int64 and nc.tensor(labels).float().dtype == np.float32
    with pytest.raises(TypeError, match="floating point"):
        nc.tensor([1, 2], requires_grad=True)


def test_factories_are_float32_and_seeded():
    for t in (nc.zeros(2, 3), nc.ones((2, 3)), nc.empty(2), nc.randn(2, 3), nc.rand(4), nc.arange(0.0, 1.0, 0.25)):
        assert t.dtype == np.float32
    assert nc.arange(5).dtype == np.int64 and nc.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert nc.zeros(2, 3).shape == (2, 3) and nc.ones((2, 3)).numpy().sum() == 6
    nc.manual_seed(123)
    a = nc.randn(5).numpy().copy()
    nc.manual_seed(123)
    np.testing.assert_array_equal(a, nc.randn(5).numpy())
    assert ((nc.rand(1000).numpy() >= 0) & (nc.rand(1000).numpy() < 1)).all()


def test_float64_mixed_with_float32_is_an_error():
    w = nc.randn(3, requires_grad=True)
    x = nc.tensor(np.ones(3))  # float64
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        w * x
    with pytest.raises(TypeError, match=r"\.float\(\)"):
        w + np.ones(3)
    np.testing.assert_allclose((w * x.float()).numpy(), w.numpy())


def test_int_tensor_with_float_scalar_becomes_float32():
    assert (nc.tensor([1, 2]) * 0.5).dtype == np.float32
    assert (nc.tensor([1, 2]) / 2).dtype == np.float32
    assert (nc.tensor([1, 2]) + 1).dtype == np.int64


def test_item_size_numel_len():
    x = nc.randn(2, 3)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.numel() == 6 and len(x) == 2 and x.ndim == 2
    assert isinstance(nc.tensor([2.5]).item(), float)
    with pytest.raises(ValueError, match="item"):
        x.item()


def test_reshape_error_message():
    with pytest.raises(ValueError, match=r"shape \(4, 4\) is invalid for a tensor of shape numcnn.Size\(\[2, 3\]\)"):
        nc.randn(2, 3).reshape(4, 4)


def test_inplace_on_leaf_requiring_grad_is_refused():
    x = nc.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in place"):
        x[0] = 1.0
    with nc.no_grad():
        x[0] = 1.0
    assert x.numpy()[0] == 1.0


def test_grad_is_skipped_for_inputs_that_do_not_need_it():
    seen = {}

    class Probe(nc.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            seen["needs"] = ctx.needs_input_grad
            return None, g

    a = nc.randn(3)
    b = nc.randn(3, requires_grad=True)
    Probe.apply(a, b).sum().backward()
    assert seen["needs"] == (False, True)
    assert a.grad is None and b.grad is not None


def test_float64_end_to_end_stays_float64():
    x = nc.tensor(np.ones((2, 3)), requires_grad=True)
    y = ((x * 2).exp().sum(1) / 3).mean()
    y.backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float64


def test_grad_mode_is_per_thread():
    import threading

    inside, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with nc.no_grad():
            inside.set()
            release.wait(5)
        seen["worker_after"] = nc.is_grad_enabled()

    t = threading.Thread(target=worker)
    t.start()
    inside.wait(5)
    seen["main_while_worker_in_no_grad"] = nc.is_grad_enabled()
    with nc.no_grad():  # overlapping blocks in two threads must not leave recording off anywhere
        release.set()
        t.join(5)
    assert seen == {"main_while_worker_in_no_grad": True, "worker_after": True}
    assert nc.is_grad_enabled()
