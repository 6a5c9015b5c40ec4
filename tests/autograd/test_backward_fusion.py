"""The engine's fused backwards (autograd/engine.py): batch norm's backward reading the gradient of the ReLU that
follows it, in one kernel. Fused and unfused runs (``engine.FUSE`` off) give the same bits, for the compiled and
NumPy backends, BatchNorm2d and BatchNorm1d, both memory layouts a conv output comes in, affine or not, in
Sequential blocks and in forward() methods that call F.relu, nn.ReLU or Tensor.relu; the fusion does not happen when
the batch norm's output has a second consumer (before the ReLU in the order, or after it: the held gradient then goes
through the ReLU's own backward), retains its grad or anomaly mode is on (checked against PyTorch); the fused path
runs where it should (counted); forward hooks still fire and see the same tensors; retain_graph still works."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models
import numcnn.nn.functional as F
from numcnn import nn
from numcnn.autograd import engine
from numcnn.autograd.anomaly import detect_anomaly
from numcnn.kernels.runtime import runtime
from numcnn.nn.functional.normalization import _BatchNormTrain

BACKENDS = ("numba", "numpy")


@pytest.fixture
def fused_calls(monkeypatch):
    """How many times batch norm's fused backward ran."""
    calls = []
    real = _BatchNormTrain.backward_after_relu

    def counting(ctx, relu_ctx, g):
        calls.append(g.shape)
        return real(ctx, relu_ctx, g)

    monkeypatch.setattr(_BatchNormTrain, "backward_after_relu", staticmethod(counting))
    return calls


def _backend(name):
    if name == "numba":
        pytest.importorskip("numba")
    return runtime.scoped(backend=name)


def _grads(make_model, x_array, backend, fuse, *, anomaly=False, loss=lambda out: (out * out).sum()):
    """Input grad and every parameter grad of one backward through a fresh model (seeded: the same weights)."""
    numcnn.manual_seed(0)
    model = make_model()
    x = numcnn.tensor(x_array, requires_grad=True)
    old = engine.FUSE
    engine.FUSE = fuse
    try:
        with _backend(backend):
            if anomaly:
                with detect_anomaly(model):
                    loss(model(x)).backward()
            else:
                loss(model(x)).backward()
    finally:
        engine.FUSE = old
    return [x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()]


def _assert_same_bits(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype and u.shape == v.shape
        assert np.array_equal(u.view(np.uint8), v.view(np.uint8))  # bits: signed zeros and NaN included


class _FunctionalBlock(nn.Module):
    """conv -> bn -> relu inside forward(), the ReLU taken three ways; a residual add at the end (not fused)."""

    def __init__(self, how, affine=True):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6, affine=affine)
        self.conv2, self.bn2 = nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6, affine=affine)
        self.relu = nn.ReLU()
        self.how = how

    def act(self, t):
        return {"F": F.relu, "module": self.relu, "method": lambda u: u.relu()}[self.how](t)

    def forward(self, x):
        out = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(out)) + out)


def _sequential(affine=True):
    return nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.BatchNorm2d(5, affine=affine), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(5, 4, 3), nn.BatchNorm2d(4, affine=affine), nn.ReLU())


def _mlp(affine=True):
    return nn.Sequential(nn.Linear(12, 7), nn.BatchNorm1d(7, affine=affine), nn.ReLU(), nn.Linear(7, 3))


def _image(n=4, c=3, hw=12, dtype=np.float32):
    return np.random.default_rng(1).standard_normal((n, c, hw, hw)).astype(dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_bn_relu_in_sequential_same_bits(backend, affine, dtype, fused_calls):
    x = _image(dtype=dtype)
    make = lambda: _sequential(affine).to(dtype=numcnn.float64) if dtype == np.float64 else _sequential(affine)  # noqa: E731
    fused = _grads(make, x, backend, True)
    assert len(fused_calls) == 2
    _assert_same_bits(fused, _grads(make, x, backend, False))
    assert len(fused_calls) == 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("how", ["F", "module", "method"])
@pytest.mark.parametrize("affine", [True, False])
def test_relu_inside_forward_same_bits(backend, how, affine, fused_calls):
    x = _image()
    fused = _grads(lambda: _FunctionalBlock(how, affine), x, backend, True)
    assert len(fused_calls) == 1  # bn1's ReLU; bn2's output goes to the add
    _assert_same_bits(fused, _grads(lambda: _FunctionalBlock(how, affine), x, backend, False))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("n", [6, 300])  # short rows (the "across" kernels) and long ones
def test_batchnorm1d_same_bits(backend, affine, n, fused_calls):
    x = np.random.default_rng(2).standard_normal((n, 12)).astype(np.float32)
    fused = _grads(lambda: _mlp(affine), x, backend, True)
    assert len(fused_calls) == 1
    _assert_same_bits(fused, _grads(lambda: _mlp(affine), x, backend, False))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fusions", [("convnet", 2), ("resnet", 4)])
def test_models_same_bits(backend, name, fusions, fused_calls):
    x = _image(n=6, c=1, hw=28)
    make = lambda: numcnn.models.get(name, blocks_per_stage=1) if name == "resnet" else numcnn.models.get(name)  # noqa: E731
    loss = lambda out: F.cross_entropy(out, numcnn.tensor(np.arange(6) % 10))  # noqa: E731
    fused = _grads(make, x, backend, True, loss=loss)
    assert len(fused_calls) == fusions
    _assert_same_bits(fused, _grads(make, x, backend, False, loss=loss))
    # anomaly mode sees every node: no fusion, the same bits
    _assert_same_bits(fused, _grads(make, x, backend, True, anomaly=True, loss=loss))
    assert len(fused_calls) == fusions


@pytest.mark.parametrize("backend", BACKENDS)
def test_signed_zeros_and_nan_gradients_same_bits(backend, fused_calls):
    """Gradients that are -0.0 or NaN where the ReLU is off: the ReLU's backward writes +0.0 there, so must the
    fused one."""
    x = _image(n=2, hw=16)

    def loss(out):
        g = np.where(np.arange(out.numpy().size).reshape(out.shape) % 3 == 0, np.nan, -0.0).astype(np.float32)
        return (out * numcnn.tensor(g)).sum()

    fused = _grads(_sequential, x, backend, True, loss=loss)
    assert len(fused_calls) == 2
    _assert_same_bits(fused, _grads(_sequential, x, backend, False, loss=loss))


def _torch_reference(x, w, b, second_consumer):
    torch = pytest.importorskip("torch")
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.batch_norm(xt, None, None, wt, bt, training=True, eps=1e-5)
    y.retain_grad()
    z = torch.relu(y) + y if second_consumer else torch.relu(y)
    (z * z).sum().backward()
    return [t.grad.numpy() for t in (xt, wt, bt)], y.grad.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["second_consumer", "retain_grad", "anomaly"])
def test_no_fusion_and_right_grads(backend, case, fused_calls):
    x = _image(dtype=np.float64)
    bn = nn.BatchNorm2d(3).to(dtype=numcnn.float64)
    bn.weight.data[:] = np.array([0.5, -1.5, 2.0])
    bn.bias.data[:] = np.array([0.1, 0.2, -0.3])
    xt = numcnn.tensor(x, requires_grad=True)
    with _backend(backend):
        y = bn(xt)
        if case == "retain_grad":
            y.retain_grad()
        z = F.relu(y) + y if case == "second_consumer" else F.relu(y)
        if case == "anomaly":
            with detect_anomaly(bn):
                (z * z).sum().backward()
        else:
            (z * z).sum().backward()
    assert fused_calls == []
    expected, y_grad = _torch_reference(x, bn.weight.numpy(), bn.bias.numpy(), case == "second_consumer")
    for got, want in zip((xt.grad, bn.weight.grad, bn.bias.grad), expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)
    if case == "retain_grad":
        np.testing.assert_allclose(y.grad.numpy(), y_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_consumer_after_the_relu_in_the_order_unfuses_the_held_gradient(backend, fused_calls, monkeypatch):
    """The ReLU's gradient is held for the batch norm's output; another consumer that comes later in the order
    (either order is tried) runs the ReLU's own backward then, and adds as without fusion: the same bits."""
    held = []
    real = engine._Held.unfused
    monkeypatch.setattr(engine._Held, "unfused", lambda self, retain: held.append(1) or real(self, retain))
    x = _image()

    def make(first_relu):
        bn = nn.BatchNorm2d(3)

        def model(t):
            y = bn(t)
            a, b = F.relu(y).sum(), (y * 3.0).sum()
            return (a + b) if first_relu else (b + a)

        model.parameters = bn.parameters
        return model

    for first_relu in (True, False):
        got = _grads(lambda f=first_relu: make(f), x, backend, True, loss=lambda out: out)
        _assert_same_bits(got, _grads(lambda f=first_relu: make(f), x, backend, False, loss=lambda out: out))
    assert fused_calls == [] and held  # held at least once, never fused


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_grads_match_torch(backend, fused_calls):
    x = _image(dtype=np.float64)
    bn = nn.BatchNorm2d(3).to(dtype=numcnn.float64)
    bn.weight.data[:] = np.array([0.5, -1.5, 2.0])
    xt = numcnn.tensor(x, requires_grad=True)
    with _backend(backend):
        z = F.relu(bn(xt))
        (z * z).sum().backward()
    assert len(fused_calls) == 1
    expected, _ = _torch_reference(x, bn.weight.numpy(), bn.bias.numpy(), False)
    for got, want in zip((xt.grad, bn.weight.grad, bn.bias.grad), expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_hooks_fire_and_see_the_same_tensors(backend, fused_calls):
    seen = []
    numcnn.manual_seed(0)
    model = _sequential()
    for name in ("1", "2", "5", "6"):  # the batch norms and the ReLUs
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: seen.append((name, i[0], o)))
    x = numcnn.tensor(_image(), requires_grad=True)
    with _backend(backend):
        model(x).sum().backward()
    assert [s[0] for s in seen] == ["1", "2", "5", "6"]
    assert seen[1][1] is seen[0][2] and seen[3][1] is seen[2][2]  # each ReLU got its batch norm's output
    assert len(fused_calls) == 2
    _assert_same_bits([x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()],
                      _grads(_sequential, _image(), backend, False, loss=lambda out: out.sum()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_retain_graph_twice_and_freed_graph(backend, fused_calls):
    x = _image()
    numcnn.manual_seed(0)
    model = _sequential()
    xt = numcnn.tensor(x, requires_grad=True)
    with _backend(backend):
        loss = model(xt).sum()
        loss.backward(retain_graph=True)
        once = xt.grad.numpy().copy()
        loss.backward()
        np.testing.assert_array_equal(xt.grad.numpy(), once + once)
        with pytest.raises(RuntimeError, match="second time"):
            loss.backward()
    assert len(fused_calls) == 4
