"""nn.functional linear, activations, softmax, dropout and normalisation against torch.nn.functional."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numcnn
import numcnn.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)
seeds = st.integers(0, 2**16)


def _rand(seed, shape, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---------------------------------------------------------------- linear


@given(lead=st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple), fin=st.integers(1, 6),
       fout=st.integers(1, 6), bias=st.booleans(), seed=seeds)
def test_linear_matches_torch(torch_check, lead, fin, fout, bias, seed):
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(lead + (fin,)), rng.standard_normal((fout, fin))]
    arrays += [rng.standard_normal(fout)] if bias else []
    arrays = [a.astype(np.float32) for a in arrays]
    torch_check(F.linear, TF.linear, *arrays, seed=seed)


# ---------------------------------------------------------------- activations

ACTIVATIONS = {
    "relu": (F.relu, TF.relu),
    "leaky_relu": (lambda x: F.leaky_relu(x), lambda x: TF.leaky_relu(x)),
    "leaky_relu_0.2": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "elu": (F.elu, TF.elu),
    "elu_0.5": (lambda x: F.elu(x, 0.5), lambda x: TF.elu(x, 0.5)),
    "gelu": (F.gelu, TF.gelu),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    "sigmoid": (F.sigmoid, torch.sigmoid),
    "tanh": (F.tanh, torch.tanh),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@given(shape=shapes, seed=seeds, scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_activation_matches_torch(torch_check, name, shape, seed, scale):
    nc, ref = ACTIVATIONS[name]
    torch_check(nc, ref, _rand(seed, shape, scale), seed=seed)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_extremes_and_zero(torch_check, name):
    """Large magnitudes stay finite and exact; the gradient at exactly 0 follows torch's convention."""
    nc, ref = ACTIVATIONS[name]
    x = np.array([-1e4, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 1e4], dtype=np.float32)
    torch_check(nc, ref, x)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_float64(torch_check, name):
    nc, ref = ACTIVATIONS[name]
    torch_check(nc, ref, np.random.default_rng(0).standard_normal((3, 4)) * 3, rtol=1e-12, atol=1e-12)


def test_tensor_methods_use_functional(close):
    x = numcnn.tensor(_rand(0, (3, 4)))
    close(x.relu().numpy(), np.maximum(x.numpy(), 0))
    close(x.sigmoid().numpy(), torch.sigmoid(torch.from_numpy(x.numpy())).numpy())


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seed=seeds, data=st.data(),
       log=st.booleans(), scale=st.sampled_from([1.0, 30.0]))
def test_softmax_and_log_softmax_match_torch(torch_check, shape, seed, data, log, scale):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    nc, ref = (F.log_softmax, TF.log_softmax) if log else (F.softmax, TF.softmax)
    torch_check(lambda x: nc(x, dim), lambda x: ref(x, dim), _rand(seed, shape, scale), seed=seed)


@pytest.mark.parametrize("log", [False, True])
def test_softmax_huge_logits_are_finite_and_exact(torch_check, log):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e4, 3e4 - 1, 3e4 - 50]], dtype=np.float32)
    nc, ref = (F.log_softmax, TF.log_softmax) if log else (F.softmax, TF.softmax)
    torch_check(lambda x: nc(x, 1), lambda x: ref(x, 1), x)


@pytest.mark.parametrize("ndim", [1, 2, 3, 4])
def test_softmax_implicit_dim_is_torchs(ndim, close):
    x = _rand(1, (2, 3, 2, 2)[:ndim])
    with pytest.warns(UserWarning):
        want = TF.softmax(torch.from_numpy(x), dim=None, _stacklevel=3).numpy()
    close(F.softmax(numcnn.tensor(x)).numpy(), want)


# ---------------------------------------------------------------- dropout


def test_dropout_identity_cases():
    x = numcnn.tensor(_rand(0, (4, 5)), requires_grad=True)
    for y in (F.dropout(x, 0.0), F.dropout(x, 0.7, training=False)):
        np.testing.assert_array_equal(y.numpy(), x.numpy())
    layer = numcnn.nn.Dropout(0.9).eval()
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_training_keeps_1_minus_p_and_scales(p):
    numcnn.manual_seed(123)
    x = numcnn.tensor(np.ones((200, 250), dtype=np.float32) * 2, requires_grad=True)
    y = F.dropout(x, p, training=True)
    assert y.dtype == np.float32
    kept = y.numpy() != 0
    n = kept.size
    # The kept fraction is Binomial(n, 1-p): 5 standard deviations.
    assert abs(kept.mean() - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.numpy()[kept], np.float32(2 / (1 - p)), rtol=1e-6)
    g = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, g / np.float32(1 - p), 0), rtol=1e-6)


def test_dropout_p1_zeroes_everything_and_same_seed_same_mask():
    x = numcnn.tensor(_rand(0, (8, 9)))
    assert not F.dropout(x, 1.0).numpy().any()
    numcnn.manual_seed(7)
    a = F.dropout(x, 0.5).numpy()
    b = F.dropout(x, 0.5).numpy()
    numcnn.manual_seed(7)
    c = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a != 0, b != 0)
    gen = np.random.default_rng(3)
    d = F.dropout(x, 0.5, generator=gen).numpy()
    e = F.dropout(x, 0.5, generator=np.random.default_rng(3)).numpy()
    np.testing.assert_array_equal(d, e)


def test_dropout_bad_p():
    with pytest.raises(ValueError, match="dropout.*1.5"):
        F.dropout(numcnn.tensor(_rand(0, (2,))), 1.5)


# ---------------------------------------------------------------- batch norm / layer norm


@given(shape=st.sampled_from([(4, 3), (5, 2, 4), (3, 2, 3, 4), (2, 3, 1, 1), (1, 2, 3)]), affine=st.booleans(),
       seed=seeds, training=st.booleans())
def test_batch_norm_matches_torch(torch_check, close, shape, affine, seed, training):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    rm0, rv0 = rng.standard_normal(C).astype(np.float32), rng.uniform(0.5, 2, C).astype(np.float32)
    nc_stats = [numcnn.tensor(rm0.copy()), numcnn.tensor(rv0.copy())]
    t_stats = [torch.from_numpy(rm0.copy()), torch.from_numpy(rv0.copy())]
    arrays = [x] + ([rng.standard_normal(C).astype(np.float32) for _ in range(2)] if affine else [])
    torch_check(lambda x, w=None, b=None: F.batch_norm(x, *nc_stats, w, b, training, 0.3, 1e-5),
                lambda x, w=None, b=None: TF.batch_norm(x, *t_stats, w, b, training, 0.3, 1e-5), *arrays, seed=seed)
    close(nc_stats[0].numpy(), t_stats[0].numpy())
    close(nc_stats[1].numpy(), t_stats[1].numpy())


def test_batch_norm_train_without_running_stats(torch_check):
    x = _rand(0, (4, 3, 2, 2))
    torch_check(lambda x: F.batch_norm(x, None, None, training=True),
                lambda x: TF.batch_norm(x, None, None, training=True), x)


@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
       norm=st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple).filter(lambda s: np.prod(s) > 2),
       affine=st.booleans(), seed=seeds)
def test_layer_norm_matches_torch(torch_check, batch, norm, affine, seed):
    # (With 1 or 2 normalised values the output is constant (xhat = 0 or +-1): the gradient is pure rounding.)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(batch + norm) * 2 + 0.5).astype(np.float32)
    arrays = [x] + ([rng.standard_normal(norm).astype(np.float32) for _ in range(2)] if affine else [])
    torch_check(lambda x, w=None, b=None: F.layer_norm(x, norm, w, b),
                lambda x, w=None, b=None: TF.layer_norm(x, norm, w, b), *arrays, seed=seed)
