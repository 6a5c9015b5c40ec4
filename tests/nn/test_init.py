"""Default initialisation and nn.init against torch's formulas: bounds and standard deviations (not values:
the generators differ), dtypes, and reproducibility under numcnn.manual_seed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import numcnn
import numcnn.nn as nn
from numcnn.nn import init

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seeded():
    """Statistical checks at 5 standard errors, on fixed seeds: deterministic, whatever the test order."""
    numcnn.manual_seed(0)
    torch.manual_seed(0)


def _uniform_std(bound: float) -> float:
    return bound / math.sqrt(3)


def _std_tol(n: int) -> float:
    """5 standard errors of a sample std, relative (uniform: excess kurtosis -1.2, Var(s)/s^2 ~ 0.2/n)."""
    return 5 * math.sqrt(0.2 / n)


def _check_uniform(arr: np.ndarray, bound: float):
    rel = _std_tol(arr.size)
    assert arr.dtype == np.float32
    assert np.abs(arr).max() <= bound * (1 + 1e-6)
    assert np.abs(arr).max() > 0.95 * bound  # fills the interval
    assert abs(arr.std() - _uniform_std(bound)) < rel * _uniform_std(bound)
    assert abs(arr.mean()) < 5 * _uniform_std(bound) / math.sqrt(arr.size)


@pytest.mark.parametrize("make,shape", [
    (lambda m: m.Conv2d(64, 32, 3), None),
    (lambda m: m.Conv2d(8, 12, (3, 5), groups=4), None),
    (lambda m: m.Conv1d(16, 64, 7), None),
    (lambda m: m.ConvTranspose2d(32, 48, 3, groups=2), None),
    (lambda m: m.Linear(300, 200), None),
])
def test_default_init_matches_torch_bounds(make, shape):
    numcnn.manual_seed(0)
    nc_mod = make(nn)
    t_mod = make(torch.nn)
    for name, t_p in t_mod.named_parameters():
        p = getattr(nc_mod, name)
        assert p.shape == tuple(t_p.shape) and p.dtype == np.float32
        # torch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both weight and bias, fan_in from the weight's dims 1...
        fan_in = t_mod.weight.shape[1] * int(np.prod(t_mod.weight.shape[2:]))
        bound = 1 / math.sqrt(fan_in)
        assert t_p.detach().abs().max().item() <= bound
        if name == "weight":
            _check_uniform(p.numpy(), bound)
            tol = math.sqrt(2) * _std_tol(p.numpy().size) * _uniform_std(bound)
            assert abs(p.numpy().std() - t_p.detach().numpy().std()) < tol
        else:
            assert np.abs(p.numpy()).max() <= bound


def test_norm_layers_init_like_torch():
    for name, args in [("BatchNorm1d", (5,)), ("BatchNorm2d", (5,)), ("LayerNorm", ((2, 3),))]:
        nc_mod, t_mod = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
        for k, v in t_mod.state_dict().items():
            np.testing.assert_array_equal(nc_mod.state_dict()[k].numpy(), v.numpy(), err_msg=f"{name}.{k}")
            assert nc_mod.state_dict()[k].dtype == v.numpy().dtype


def test_default_init_reproducible_with_manual_seed():
    numcnn.manual_seed(42)
    a = nn.Conv2d(3, 8, 3).state_dict()
    b = nn.Conv2d(3, 8, 3).state_dict()
    numcnn.manual_seed(42)
    c = nn.Conv2d(3, 8, 3).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), c[k].numpy())
        assert not np.array_equal(a[k].numpy(), b[k].numpy())


def _fans(shape):
    rf = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * rf, shape[0] * rf


SHAPE = (256, 128, 3, 3)


@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_xavier_uniform(gain):
    t = numcnn.empty(*SHAPE)
    assert init.xavier_uniform_(t, gain=gain) is t
    fi, fo = _fans(SHAPE)
    _check_uniform(t.numpy(), gain * math.sqrt(6 / (fi + fo)))
    ref = torch.nn.init.xavier_uniform_(torch.empty(SHAPE), gain=gain)
    assert abs(t.numpy().std() - ref.std().item()) < 0.02 * ref.std().item()


def test_xavier_normal():
    t = init.xavier_normal_(numcnn.empty(*SHAPE), gain=1.5)
    fi, fo = _fans(SHAPE)
    std = 1.5 * math.sqrt(2 / (fi + fo))
    assert t.dtype == np.float32
    assert abs(t.numpy().std() - std) < 0.02 * std
    assert abs(torch.nn.init.xavier_normal_(torch.empty(SHAPE), gain=1.5).std().item() - std) < 0.02 * std


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)),
                                            ("linear", 0), ("tanh", 0)])
def test_kaiming(mode, nonlinearity, a):
    fi, fo = _fans(SHAPE)
    fan = fi if mode == "fan_in" else fo
    std = torch.nn.init.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    assert init.calculate_gain(nonlinearity, a) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, a))
    u = init.kaiming_uniform_(numcnn.empty(*SHAPE), a=a, mode=mode, nonlinearity=nonlinearity)
    _check_uniform(u.numpy(), math.sqrt(3) * std)
    t_u = torch.nn.init.kaiming_uniform_(torch.empty(SHAPE), a=a, mode=mode, nonlinearity=nonlinearity)
    assert t_u.abs().max().item() <= math.sqrt(3) * std * (1 + 1e-6)
    n = init.kaiming_normal_(numcnn.empty(*SHAPE), a=a, mode=mode, nonlinearity=nonlinearity)
    assert n.dtype == np.float32
    assert abs(n.numpy().std() - std) < 0.02 * std
    t_n = torch.nn.init.kaiming_normal_(torch.empty(SHAPE), a=a, mode=mode, nonlinearity=nonlinearity)
    assert abs(t_n.std().item() - std) < 0.02 * std


@pytest.mark.parametrize("name", ["linear", "conv2d", "sigmoid", "tanh", "relu", "selu"])
def test_calculate_gain(name):
    assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))


def test_uniform_normal_constant_and_generator():
    t = init.uniform_(numcnn.empty(100, 100), -2.0, 3.0)
    assert t.dtype == np.float32 and t.numpy().min() >= -2 and t.numpy().max() < 3
    assert abs(t.numpy().mean() - 0.5) < 0.05
    t = init.normal_(numcnn.empty(100, 100), 1.0, 0.5)
    assert abs(t.numpy().mean() - 1.0) < 0.02 and abs(t.numpy().std() - 0.5) < 0.02
    np.testing.assert_array_equal(init.constant_(numcnn.empty(2, 3), 0.25).numpy(), np.full((2, 3), 0.25))
    np.testing.assert_array_equal(init.zeros_(numcnn.empty(2)).numpy(), [0, 0])
    np.testing.assert_array_equal(init.ones_(numcnn.empty(2)).numpy(), [1, 1])
    a = init.normal_(numcnn.empty(5), generator=np.random.default_rng(1)).numpy()
    b = init.normal_(numcnn.empty(5), generator=np.random.default_rng(1)).numpy()
    np.testing.assert_array_equal(a, b)


def test_init_of_float64_parameter_stays_float64():
    t = numcnn.empty(30, 40, dtype=np.float64)
    init.kaiming_uniform_(t)
    assert t.dtype == np.float64
    assert np.abs(t.numpy()).max() <= math.sqrt(3) * math.sqrt(2 / (1 + 0.01**2)) / math.sqrt(40)


def test_init_rejects_1d_fans():
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(numcnn.empty(5))
