"""Layers against torch.nn with the weights copied from torch (its state_dict converted with .numpy()):
outputs, input and parameter gradients, state_dict keys and shapes, BatchNorm running statistics, and a
small two-conv ConvNet end to end (logits, loss, every parameter gradient)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numcnn
import numcnn.nn as nn

torch = pytest.importorskip("torch")


def _copy_from_torch(nc_mod, t_mod):
    """Load torch's state_dict (as ndarrays) into the numcnn module; check keys and shapes agree first."""
    sd = {k: v.detach().numpy().copy() for k, v in t_mod.state_dict().items()}
    own = nc_mod.state_dict()
    assert list(own) == list(sd), f"state_dict keys {list(own)} != torch {list(sd)}"
    for k, v in sd.items():
        assert own[k].shape == v.shape, f"{k}: shape {own[k].shape} != torch {v.shape}"
        assert own[k].dtype == v.dtype, f"{k}: dtype {own[k].dtype} != torch {v.dtype}"
    result = nc_mod.load_state_dict(sd)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    for k, v in nc_mod.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), sd[k])


def _pair(name, *args, **kwargs):
    torch.manual_seed(0)
    t_mod = getattr(torch.nn, name)(*args, **{k: v for k, v in kwargs.items() if k != "algorithm"})
    nc_mod = getattr(nn, name)(*args, **kwargs)
    _copy_from_torch(nc_mod, t_mod)
    return nc_mod, t_mod


def _x(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


LAYER_CASES = [
    ("Conv2d", (3, 4, 3), dict(padding=1), (2, 3, 6, 5)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=2, dilation=(1, 2), groups=2, bias=False), (2, 4, 7, 8)),
    ("Conv2d", (3, 6, 3), dict(padding="same", groups=3), (1, 3, 5, 4)),
    ("Conv2d", (2, 3, 3), dict(padding="valid"), (2, 6, 6)),
    ("Conv2d", (2, 2, 2), dict(padding=1, stride=2, algorithm="naive"), (1, 2, 3, 3)),
    ("Conv1d", (3, 4, 3), dict(padding=2, stride=2), (2, 3, 9)),
    ("Conv1d", (4, 4, 2), dict(groups=4, dilation=2, bias=False), (4, 7)),
    ("Conv1d", (2, 3, 4), dict(padding="same"), (2, 2, 7)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 4, 3)),
    ("ConvTranspose2d", (4, 2, (2, 3)), dict(stride=(1, 2), groups=2, dilation=2, bias=False), (1, 4, 3, 3)),
    ("Linear", (5, 3), dict(), (4, 5)),
    ("Linear", (5, 3), dict(bias=False), (2, 3, 5)),
    ("LayerNorm", (5,), dict(), (3, 5)),
    ("LayerNorm", ((3, 4),), dict(eps=1e-3), (2, 3, 4)),
    ("LayerNorm", (4,), dict(elementwise_affine=False), (3, 4)),
    ("LayerNorm", (4,), dict(bias=False), (3, 4)),
    ("MaxPool2d", (2,), dict(), (2, 3, 6, 6)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 3, 6, 5)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 6, 5)),
    ("AvgPool2d", (2,), dict(ceil_mode=True, divisor_override=3), (1, 2, 5, 5)),
    ("AdaptiveAvgPool2d", ((2, 3),), dict(), (2, 3, 5, 7)),
    ("AdaptiveAvgPool2d", (1,), dict(), (2, 3, 5, 7)),
    ("ReLU", (), dict(), (3, 4)),
    ("LeakyReLU", (0.1,), dict(), (3, 4)),
    ("ELU", (), dict(alpha=0.7), (3, 4)),
    ("GELU", (), dict(), (3, 4)),
    ("GELU", (), dict(approximate="tanh"), (3, 4)),
    ("Sigmoid", (), dict(), (3, 4)),
    ("Tanh", (), dict(), (3, 4)),
    ("Softmax", (), dict(dim=1), (3, 4)),
    ("LogSoftmax", (), dict(dim=-1), (3, 4)),
    ("Flatten", (), dict(), (2, 3, 2, 2)),
    ("Identity", (), dict(), (2, 3)),
]


@pytest.mark.parametrize("case", LAYER_CASES, ids=lambda c: f"{c[0]}{c[1]}{c[2]}")
def test_layer_matches_torch(torch_check, case):
    name, args, kwargs, shape = case
    nc_mod, t_mod = _pair(name, *args, **kwargs)
    torch_check(nc_mod, t_mod, _x(1, *shape), modules=(nc_mod, t_mod))


@pytest.mark.parametrize("name,shape", [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)),
                                        ("BatchNorm2d", (4, 3, 2, 3))])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_layer_train_then_eval(torch_check, close, name, shape, momentum):
    nc_mod, t_mod = _pair(name, 3, momentum=momentum)
    with torch.no_grad():  # non-trivial affine parameters
        t_mod.weight.uniform_(0.5, 1.5)
        t_mod.bias.uniform_(-1, 1)
    _copy_from_torch(nc_mod, t_mod)
    for step in range(4):
        x = _x(step, *shape) * (step + 1) + step
        nc_mod.zero_grad()
        t_mod.zero_grad()
        torch_check(nc_mod, t_mod, x, modules=(nc_mod, t_mod), seed=step)
        for key, want in t_mod.state_dict().items():
            close(nc_mod.state_dict()[key].numpy(), want.numpy(), what=key)
    assert nc_mod.num_batches_tracked.item() == 4 and nc_mod.num_batches_tracked.dtype == np.int64
    nc_mod.eval()
    t_mod.eval()
    torch_check(nc_mod, t_mod, _x(9, *shape) * 3, modules=(nc_mod, t_mod))
    assert nc_mod.num_batches_tracked.item() == 4


@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_without_running_stats(torch_check, affine):
    nc_mod, t_mod = _pair("BatchNorm2d", 3, affine=affine, track_running_stats=False)
    assert list(nc_mod.state_dict()) == list(t_mod.state_dict())
    for m in (nc_mod, t_mod):
        m.eval()  # still uses batch statistics
    torch_check(nc_mod, t_mod, _x(0, 4, 3, 2, 2), modules=(nc_mod, t_mod))


def test_dropout_layer_scale_and_eval():
    numcnn.manual_seed(0)
    layer = nn.Dropout(0.25)
    x = numcnn.tensor(np.ones((100, 100), dtype=np.float32))
    y = layer(x).numpy()
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y != 0).mean() - 0.75) < 0.02
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


@given(seed=st.integers(0, 2**16), cin=st.integers(1, 4), cout=st.integers(1, 4), k=st.integers(1, 3),
       stride=st.integers(1, 2), padding=st.integers(0, 1), bias=st.booleans())
def test_conv2d_layer_random(torch_check, seed, cin, cout, k, stride, padding, bias):
    nc_mod, t_mod = _pair("Conv2d", cin, cout, k, stride=stride, padding=padding, bias=bias)
    torch_check(nc_mod, t_mod, _x(seed, 2, cin, 5, 4), modules=(nc_mod, t_mod), seed=seed)


# ---------------------------------------------------------------- a small ConvNet end to end


def _convnet(m):
    return m.Sequential(
        m.Conv2d(1, 16, 5, padding=2), m.BatchNorm2d(16), m.ReLU(), m.MaxPool2d(2),
        m.Conv2d(16, 32, 5, padding=2), m.BatchNorm2d(32), m.ReLU(), m.MaxPool2d(2),
        m.Flatten(), m.Linear(1568, 10),
    )


def test_convnet_matches_torch(close):
    torch.manual_seed(0)
    t_net, nc_net = _convnet(torch.nn), _convnet(nn)
    _copy_from_torch(nc_net, t_net)
    assert [n for n, _ in nc_net.named_parameters()] == [n for n, _ in t_net.named_parameters()]
    assert [(n, tuple(p.shape)) for n, p in nc_net.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in t_net.named_parameters()]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    for _ in range(2):  # the second step runs on updated BatchNorm running statistics
        t_logits = t_net(torch.from_numpy(x))
        t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
        t_net.zero_grad()
        t_loss.backward()
        nc_logits = nc_net(numcnn.tensor(x))
        nc_loss = nn.functional.cross_entropy(nc_logits, numcnn.tensor(y))
        nc_net.zero_grad()
        nc_loss.backward()
        assert nc_logits.dtype == np.float32 and nc_loss.dtype == np.float32
        close(nc_logits.numpy(), t_logits.detach().numpy(), what="logits")
        close(nc_loss.numpy(), t_loss.detach().numpy(), what="loss")
        for (name, p), (_, q) in zip(nc_net.named_parameters(), t_net.named_parameters()):
            assert p.grad.dtype == np.float32
            close(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=5e-5, what=f"grad {name}")
        for key, want in t_net.state_dict().items():
            close(nc_net.state_dict()[key].numpy(), want.numpy(), what=key)
    nc_net.eval()
    t_net.eval()
    close(nc_net(numcnn.tensor(x)).numpy(), t_net(torch.from_numpy(x)).detach().numpy(), what="eval logits")


def test_convnet_state_dict_round_trip_from_numcnn_to_torch(close):
    """The other direction: numcnn's state_dict loads into torch as is (same keys, shapes, dtypes)."""
    numcnn.manual_seed(3)
    nc_net, t_net = _convnet(nn), _convnet(torch.nn)
    t_net.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in nc_net.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    nc_net.eval()
    t_net.eval()
    close(nc_net(numcnn.tensor(x)).numpy(), t_net(torch.from_numpy(x)).detach().numpy())
