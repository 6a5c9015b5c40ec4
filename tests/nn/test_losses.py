"""Losses (functional and modules) against torch: cross_entropy (indices, probabilities, (N, C, d1), weight,
ignore_index, label_smoothing, reductions, huge logits), nll_loss, mse_loss, l1_loss,
binary_cross_entropy(_with_logits)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import numcnn
import numcnn.nn as nn
import numcnn.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

seeds = st.integers(0, 2**16)
reductions = st.sampled_from(["mean", "sum", "none"])


def _t(a):
    return torch.from_numpy(np.array(a))


def _n(a):
    return numcnn.tensor(np.array(a))


@st.composite
def ce_cases(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 5))
    extra = draw(st.sampled_from([(), (3,), (2, 2)]))
    return dict(n=n, c=c, extra=extra, reduction=draw(reductions), smoothing=draw(st.sampled_from([0.0, 0.1, 0.5])),
                weighted=draw(st.booleans()), ignore=draw(st.booleans()), seed=draw(seeds))


@given(case=ce_cases())
def test_cross_entropy_class_indices(torch_check, case):
    rng = np.random.default_rng(case["seed"])
    n, c, extra = case["n"], case["c"], case["extra"]
    x = (rng.standard_normal((n, c) + extra) * 3).astype(np.float32)
    target = rng.integers(0, c, (n,) + extra)
    ignore_index = -100
    if case["ignore"]:
        ignore_index = int(rng.integers(0, c))
        target.reshape(-1)[0] = ignore_index  # at least one ignored...
        target.reshape(-1)[-1] = (ignore_index + 1) % c if c > 1 else ignore_index  # ...and one kept
    w = rng.uniform(0.2, 2, c).astype(np.float32) if case["weighted"] else None
    kw = dict(ignore_index=ignore_index, reduction=case["reduction"], label_smoothing=case["smoothing"])
    all_ignored = c == 1 and case["ignore"]
    if all_ignored and case["reduction"] == "mean":
        return  # 0/0: torch gives nan, covered by test_cross_entropy_all_ignored_mean_is_nan
    torch_check(lambda x, t: F.cross_entropy(x, t, None if w is None else _n(w), **kw),
                lambda x, t: TF.cross_entropy(x, t, None if w is None else _t(w), **kw), x, target,
                seed=case["seed"])


@given(case=ce_cases())
def test_cross_entropy_probabilities(torch_check, case):
    rng = np.random.default_rng(case["seed"])
    n, c, extra = case["n"], case["c"], case["extra"]
    x = (rng.standard_normal((n, c) + extra) * 3).astype(np.float32)
    p = rng.uniform(0, 1, (n, c) + extra).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    w = rng.uniform(0.2, 2, c).astype(np.float32) if case["weighted"] else None
    kw = dict(reduction=case["reduction"], label_smoothing=case["smoothing"])
    # The target is a float input too: its gradient is compared as well.
    torch_check(lambda x, t: F.cross_entropy(x, t, None if w is None else _n(w), **kw),
                lambda x, t: TF.cross_entropy(x, t, None if w is None else _t(w), **kw), x, p, seed=case["seed"])


def test_cross_entropy_unbatched(torch_check):
    x = np.random.default_rng(0).standard_normal(5).astype(np.float32)
    torch_check(lambda x, t: F.cross_entropy(x, t), lambda x, t: TF.cross_entropy(x, t), x, np.array(3))
    torch_check(lambda x, t: F.cross_entropy(x, t, reduction="none", label_smoothing=0.2),
                lambda x, t: TF.cross_entropy(x, t, reduction="none", label_smoothing=0.2), x, np.array(1))


def test_cross_entropy_all_ignored_mean_is_nan():
    x = numcnn.tensor(np.zeros((2, 3), dtype=np.float32))
    t = numcnn.tensor(np.array([-100, -100]))
    want = TF.cross_entropy(torch.zeros(2, 3), torch.tensor([-100, -100]))
    assert np.isnan(want.item())
    with np.errstate(all="ignore"):
        assert np.isnan(F.cross_entropy(x, t).item())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_huge_logits_finite_and_exact(torch_check, smoothing, reduction):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [0.0, 0.0, -1e4]], dtype=np.float32)
    t = np.array([1, 0, 2])
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    out, _ = torch_check(lambda x, t: F.cross_entropy(x, t, **kw), lambda x, t: TF.cross_entropy(x, t, **kw), x, t)
    assert np.isfinite(out[0].numpy()).all()
    if reduction == "none" and smoothing == 0:
        # -log softmax exactly: 2e4, 2e4 + log 2, 1e4 + log 2 (in float32)
        np.testing.assert_allclose(out[0].numpy(), [2e4, 2e4 + np.log(2), 1e4 + np.log(2)], rtol=1e-7)


@given(n=st.integers(1, 4), c=st.integers(1, 5), extra=st.sampled_from([(), (3,)]), reduction=reductions,
       weighted=st.booleans(), seed=seeds)
def test_nll_loss(torch_check, n, c, extra, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    logp = rng.standard_normal((n, c) + extra).astype(np.float32)
    target = rng.integers(0, c, (n,) + extra)
    target.reshape(-1)[0] = -100
    if reduction == "mean" and target.size == 1:
        target[...] = 0
    w = rng.uniform(0.2, 2, c).astype(np.float32) if weighted else None
    torch_check(lambda x, t: F.nll_loss(x, t, None if w is None else _n(w), reduction=reduction),
                lambda x, t: TF.nll_loss(x, t, None if w is None else _t(w), reduction=reduction), logp, target,
                seed=seed)


PAIR_LOSSES = {"mse_loss": (F.mse_loss, TF.mse_loss), "l1_loss": (F.l1_loss, TF.l1_loss)}


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
@given(shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple), reduction=reductions, seed=seeds)
def test_regression_losses(torch_check, name, shape, reduction, seed):
    rng = np.random.default_rng(seed)
    x, y = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    nc, ref = PAIR_LOSSES[name]
    torch_check(lambda a, b: nc(a, b, reduction=reduction), lambda a, b: ref(a, b, reduction=reduction), x, y,
                seed=seed)


def test_l1_loss_gradient_at_zero_difference(torch_check):
    x = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    torch_check(F.l1_loss, TF.l1_loss, x, x.copy())


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), reduction=reductions,
       weighted=st.booleans(), pos=st.booleans(), scale=st.sampled_from([1.0, 20.0]), seed=seeds)
def test_bce_with_logits(torch_check, shape, reduction, weighted, pos, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    w = rng.uniform(0.2, 2, shape[-1:]).astype(np.float32) if weighted else None
    pw = rng.uniform(0.2, 3, shape[-1:]).astype(np.float32) if pos else None

    def nc(x, t):
        return F.binary_cross_entropy_with_logits(x, t, None if w is None else _n(w), reduction,
                                                  None if pw is None else _n(pw))

    def ref(x, t):
        return TF.binary_cross_entropy_with_logits(x, t, None if w is None else _t(w), reduction=reduction,
                                                   pos_weight=None if pw is None else _t(pw))

    torch_check(nc, ref, x, t, seed=seed)


def test_bce_with_logits_huge_logits_exact(torch_check):
    x = np.array([1e4, -1e4, 100.0, -100.0], dtype=np.float32)
    t = np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)
    out, _ = torch_check(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
                         lambda x, t: TF.binary_cross_entropy_with_logits(x, t, reduction="none"), x, t)
    np.testing.assert_allclose(out[0].numpy(), [1e4, 1e4, 0.0, 0.0], atol=1e-30)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), reduction=reductions,
       weighted=st.booleans(), seed=seeds)
def test_binary_cross_entropy(torch_check, shape, reduction, weighted, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, shape).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    w = rng.uniform(0.2, 2, shape).astype(np.float32) if weighted else None
    torch_check(lambda p, t: F.binary_cross_entropy(p, t, None if w is None else _n(w), reduction),
                lambda p, t: TF.binary_cross_entropy(p, t, None if w is None else _t(w), reduction=reduction), p, t,
                seed=seed)


def test_binary_cross_entropy_clamps_log_at_minus_100(torch_check):
    p = np.array([0.0, 1.0, 0.0, 1.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0], dtype=np.float32)
    out, _ = torch_check(lambda p, t: F.binary_cross_entropy(p, t, reduction="none"),
                         lambda p, t: TF.binary_cross_entropy(p, t, reduction="none"), p, t, grad=False)
    np.testing.assert_array_equal(out[0].numpy(), [100, 100, 0, 0])


# ---------------------------------------------------------------- modules

MODULE_CASES = {
    "CrossEntropyLoss": (lambda m, **k: m.CrossEntropyLoss(**k), dict(label_smoothing=0.1, reduction="sum"), "int"),
    "CrossEntropyLoss_w": (lambda m, **k: m.CrossEntropyLoss(**k), dict(weight="w", ignore_index=1), "int"),
    "NLLLoss": (lambda m, **k: m.NLLLoss(**k), dict(weight="w"), "int"),
    "MSELoss": (lambda m, **k: m.MSELoss(**k), dict(reduction="none"), "float"),
    "L1Loss": (lambda m, **k: m.L1Loss(**k), dict(), "float"),
    "BCEWithLogitsLoss": (lambda m, **k: m.BCEWithLogitsLoss(**k), dict(pos_weight="w"), "prob"),
    "BCELoss": (lambda m, **k: m.BCELoss(**k), dict(weight="w"), "prob"),
}


@pytest.mark.parametrize("name", sorted(MODULE_CASES))
def test_loss_modules_match_torch(torch_check, name):
    make, kwargs, kind = MODULE_CASES[name]
    rng = np.random.default_rng(5)
    x = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, 3).astype(np.float32)
    target = {"int": rng.integers(0, 3, 4), "float": rng.standard_normal((4, 3)).astype(np.float32),
              "prob": (rng.uniform(0, 1, (4, 3)) > 0.5).astype(np.float32)}[kind]
    nc_kw = {k: (_n(w) if v == "w" else v) for k, v in kwargs.items()}
    t_kw = {k: (_t(w) if v == "w" else v) for k, v in kwargs.items()}
    nc_mod, t_mod = make(nn, **nc_kw), make(torch.nn, **t_kw)
    torch_check(nc_mod, t_mod, x, target)
    assert list(nc_mod.state_dict()) == list(t_mod.state_dict())
