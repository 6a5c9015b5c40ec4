"""Adadelta, Adamax, NAdam, RAdam and ASGD against torch.optim 2.13 and against hand-computed steps.

Same gradient sequences in, same parameters and state out (torch's single-tensor path, ``foreach=False``);
torch's float32 ``sqrt``, ``lerp`` and ``add(alpha=)`` round differently in the last bit (vectorised
approximations and fused multiply-adds), hence the tolerances of tests/optim/test_optimizers.py.
"""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest

from numcnn.optim import ASGD, Adadelta, Adamax, NAdam, RAdam, lr_scheduler
from param_standins import Grad, Param

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]
OURS = {"Adadelta": Adadelta, "Adamax": Adamax, "NAdam": NAdam, "RAdam": RAdam, "ASGD": ASGD}
# State that torch keeps as 0-d tensors and numcnn as Python floats.
SCALAR_STATE = ("step", "mu_product", "eta", "mu")
FLAGS = ("foreach", "capturable", "differentiable")

CONFIGS = [
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.6, "eps": 1e-4}),
    ("Adadelta", {"weight_decay": 0.1, "maximize": True}),
    ("Adadelta", {"rho": 1.0}),
    ("Adadelta", {"rho": 0.0, "lr": 0.1}),
    ("Adamax", {}),
    ("Adamax", {"lr": 0.01, "betas": (0.5, 0.8), "eps": 1e-3}),
    ("Adamax", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {}),
    ("NAdam", {"lr": 0.01, "betas": (0.8, 0.9), "momentum_decay": 0.05, "eps": 1e-6}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.1}),
    ("NAdam", {"lr": 0.01, "weight_decay": 0.2, "decoupled_weight_decay": True, "maximize": True}),
    ("RAdam", {}),
    ("RAdam", {"lr": 0.01, "betas": (0.7, 0.9)}),  # rho_t > 5 from step 6: both branches run
    ("RAdam", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("RAdam", {"lr": 0.01, "betas": (0.8, 0.95), "weight_decay": 0.2, "decoupled_weight_decay": True}),
    ("ASGD", {}),
    ("ASGD", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 5}),  # averaging starts within the run
    ("ASGD", {"lr": 0.05, "t0": 2, "weight_decay": 0.1, "maximize": True}),
]


def _ids(config):
    name, kw = config
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _torch_opt(name, params, kw, foreach=False):
    return getattr(torch.optim, name)(params, foreach=foreach, **kw)


def _make_pair(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return [Param(a) for a in inits], [torch.tensor(a, requires_grad=True) for a in inits], rng


def _grad_sequence(rng, shapes, steps, dtype=np.float32, none_every=0):
    seq = []
    for k in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        if none_every and k % none_every == 1:
            grads[0] = None  # a parameter without gradient this step must be skipped
        seq.append(grads)
    return seq


def _set_grads(ours, theirs, grads):
    for p, t, g in zip(ours, theirs, grads, strict=True):
        p.grad = None if g is None else Grad(np.array(g, copy=True))
        t.grad = None if g is None else torch.tensor(np.array(g, copy=True))


def _give_grads(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else Grad(np.array(g, copy=True))


def _assert_close(ours, theirs, rtol=RTOL, atol=ATOL, msg=""):
    for i, (p, t) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{msg} param {i}")


def _run_pair(name, kw, steps, shapes=SHAPES, dtype=np.float32, none_every=0, foreach=False):
    ours, theirs, rng = _make_pair(shapes, dtype)
    opt, topt = OURS[name](ours, foreach=foreach, **kw), _torch_opt(name, theirs, kw, foreach=foreach)
    for grads in _grad_sequence(rng, shapes, steps, dtype, none_every):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
    return opt, topt, ours, theirs


# ----------------------------------------------------------------------------------------- parity with torch


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_matches_torch_step_by_step(config):
    name, kw = config
    ours, theirs, rng = _make_pair(SHAPES)
    opt, topt = OURS[name](ours, **kw), _torch_opt(name, theirs, kw)
    for k, grads in enumerate(_grad_sequence(rng, SHAPES, 25, none_every=4)):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs, msg=f"step {k}")


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_state_dict_matches_torch(config):
    name, kw = config
    opt, topt, ours, _ = _run_pair(name, kw, 10, none_every=4)
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for index, state in sd["state"].items():
        tstate = tsd["state"][index]
        assert list(state) == list(tstate)  # same keys in torch's order
        for key, value in state.items():
            if key in SCALAR_STATE:
                # bit for bit: torch's float32 0-d tensor and our Python float hold the same number
                assert type(value) is float and value == tstate[key].item(), key
            else:
                assert value.dtype == np.float32 and value.shape == SHAPES[index]
                np.testing.assert_allclose(value, tstate[key].numpy(), rtol=RTOL, atol=ATOL, err_msg=key)
    assert sd["state"][0]["step"] == 7.0 and sd["state"][1]["step"] == 10.0  # parameter 0 skipped 3 times
    for group, tgroup in zip(sd["param_groups"], tsd["param_groups"], strict=True):
        assert list(group) == list(tgroup)
        for key, value in group.items():
            assert tgroup[key] == value, key


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_float64_parameters_stay_float64(config):
    name, kw = config
    opt, _, ours, theirs = _run_pair(name, kw, 8, dtype=np.float64)
    _assert_close(ours, theirs, rtol=1e-12, atol=1e-13)
    for p in ours:
        assert p.data.dtype == np.float64
        assert all(v.dtype == np.float64 for v in opt.state[p].values() if isinstance(v, np.ndarray))


@pytest.mark.parametrize("name", sorted(OURS))
def test_no_float64_appears_for_float32_parameters(name):
    opt, _, ours, _ = _run_pair(name, {"weight_decay": 0.1}, 4)
    for p in ours:
        assert p.data.dtype == np.float32
        for key, value in opt.state[p].items():
            assert (value.dtype == np.float32) if isinstance(value, np.ndarray) else (type(value) is float), key


@pytest.mark.parametrize("name", sorted(OURS))
def test_defaults_and_signature_match_torch(name):
    p, t = Param(np.zeros(1, np.float32)), torch.zeros(1, requires_grad=True)
    ours, theirs = OURS[name]([p]).param_groups[0], getattr(torch.optim, name)([t]).param_groups[0]
    assert list(ours) == list(theirs)
    assert all(theirs[k] == v for k, v in ours.items() if k != "params")
    sig, tsig = inspect.signature(OURS[name]), inspect.signature(getattr(torch.optim, name))
    assert [(q.name, q.kind, q.default) for q in sig.parameters.values()] == [
        (q.name, q.kind, q.default) for q in tsig.parameters.values()
    ]


def _run_ours(name, kw, steps):
    """Ours alone, on the parameters and gradients that ``_run_pair`` draws."""
    ours, _, rng = _make_pair(SHAPES)
    opt = OURS[name](ours, **kw)
    for grads in _grad_sequence(rng, SHAPES, steps):
        _give_grads(ours, grads)
        opt.step()
    return opt, ours


@pytest.mark.parametrize("name", sorted(OURS))
@pytest.mark.parametrize("flag", FLAGS)
def test_torch_only_flags_are_accepted_and_change_nothing(name, flag):
    # numcnn runs one single-tensor path on the CPU whatever the flags: same numbers, the flag kept in the groups.
    kw = {"weight_decay": 0.05}
    _, _, plain, theirs = _run_pair(name, kw, 6)
    flagged_opt, flagged = _run_ours(name, {**kw, flag: True}, 6)
    assert flagged_opt.param_groups[0][flag] is True
    for a, b in zip(plain, flagged, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    _assert_close(flagged, theirs)
    if flag == "foreach":  # torch's multi-tensor path runs on the CPU too: the same numbers within rounding
        _, _, _, theirs_foreach = _run_pair(name, kw, 6, foreach=True)
        _assert_close(flagged, theirs_foreach)


# --------------------------------------------------------------------------------------- hand-computed steps


def _one_step(cls, p0, g, **kw):
    p = Param(np.array(p0, np.float32))
    opt = cls([p], **kw)
    p.grad = Grad(np.array(g, np.float32))
    opt.step()
    return p.array.astype(np.float64), opt


def test_first_steps_by_hand():
    p0, g = np.array([1.0, -2.0, 0.5]), np.array([0.5, -1.0, 2.0])
    # Adadelta: v = (1 - rho) g^2, delta = sqrt(0 + eps) / sqrt(v + eps) * g, p <- p - lr * delta
    got, _ = _one_step(Adadelta, p0, g, lr=1.0, rho=0.9, eps=1e-6)
    np.testing.assert_allclose(got, p0 - np.sqrt(1e-6) / np.sqrt(0.1 * g**2 + 1e-6) * g, rtol=1e-6)
    # Adamax: m = (1 - b1) g, u = |g| + eps, p <- p - lr / (1 - b1) * m / u = p - lr * g / (|g| + eps)
    got, _ = _one_step(Adamax, p0, g, lr=0.1)
    np.testing.assert_allclose(got, p0 - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-6)
    # RAdam: rho_1 = 1 <= 5, so the first step is SGD on the bias-corrected average: p - lr * g
    got, _ = _one_step(RAdam, p0, g, lr=0.1)
    np.testing.assert_allclose(got, p0 - 0.1 * g, rtol=1e-6)
    # ASGD: p <- p (1 - lambd lr) - lr g; ax = p; eta = lr / (1 + lambd lr)^alpha; mu = 1 (t0 not reached)
    got, opt = _one_step(ASGD, p0, g, lr=0.1, lambd=0.01)
    np.testing.assert_allclose(got, p0 * (1 - 0.01 * 0.1) - 0.1 * g, rtol=1e-6)
    state = opt.state[opt.param_groups[0]["params"][0]]
    np.testing.assert_array_equal(state["ax"], got.astype(np.float32))
    assert state["eta"] == float(np.float32(0.1 / (1 + 0.01 * 0.1) ** 0.75)) and state["mu"] == 1.0


def test_nadam_first_two_steps_by_hand():
    lr, b1, b2, eps, psi = 0.01, 0.9, 0.999, 1e-8, 4e-3
    mu = [b1 * (1 - 0.5 * 0.96 ** (t * psi)) for t in (1, 2, 3)]
    p, m, v, prod = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2), 1.0
    param = Param(p.astype(np.float32))
    opt = NAdam([param], lr=lr)
    for t, g in enumerate([np.array([0.5, -1.0]), np.array([-0.25, 3.0])], start=1):
        prod *= mu[t - 1]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        denom = np.sqrt(v / (1 - b2**t)) + eps
        p = p - lr * (1 - mu[t - 1]) / (1 - prod) * g / denom - lr * mu[t] / (1 - prod * mu[t]) * m / denom
        param.grad = Grad(g.astype(np.float32))
        opt.step()
        np.testing.assert_allclose(param.data, p, rtol=1e-6)
        assert opt.state[param]["mu_product"] == pytest.approx(prod, rel=1e-7)


def test_radam_switches_to_the_rectified_step_when_rho_exceeds_5():
    b2 = 0.9
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2**t / (1 - b2**t) for t in range(1, 9)]
    first = next(t for t, r in enumerate(rho, start=1) if r > 5)
    p = Param(np.zeros(2, np.float32))
    opt = RAdam([p], lr=0.1, betas=(0.0, b2))  # beta1 = 0: m = g, no bias correction of m
    g = np.array([2.0, -0.5], np.float32)
    for _ in range(first):
        before = p.array.astype(np.float64)
        p.grad = Grad(g.copy())
        opt.step()
    # the rectified Adam step: lr * r_t * sqrt(bc2) * g / (sqrt(v) + eps), v = g^2 (1 - b2^t)
    t = first
    r = ((rho[t - 1] - 4) * (rho[t - 1] - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho[t - 1])) ** 0.5
    bc2 = 1 - b2**t
    expected = before - 0.1 * r * np.sqrt(bc2) * g / (np.abs(g) * np.sqrt(bc2) + 1e-8)
    np.testing.assert_allclose(p.data, expected, rtol=1e-5)


def test_asgd_ax_is_the_mean_of_the_iterates_after_t0():
    t0, steps = 3, 12
    rng = np.random.default_rng(3)
    p = Param(rng.standard_normal(4).astype(np.float32))
    opt = ASGD([p], lr=0.05, t0=t0)
    iterates = []
    for _ in range(steps):
        p.grad = Grad(rng.standard_normal(4).astype(np.float32))
        opt.step()
        iterates.append(p.array.astype(np.float64))
    # mu = 1 / (t - t0) from step t0 + 1 on, so ax averages the iterates of steps t0 + 2 .. t
    np.testing.assert_allclose(opt.state[p]["ax"], np.mean(iterates[t0 + 1:], axis=0), rtol=1e-5)
    assert opt.state[p]["mu"] == float(np.float32(1 / (steps - t0)))


# ------------------------------------------------------------------------------------------------ state dicts


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_resume_from_state_dict_after_3_steps_is_exact(config):
    name, kw = config
    shapes = [(3, 2), (4,)]
    ours, _, rng = _make_pair(shapes)
    seq = _grad_sequence(rng, shapes, 9, none_every=5)
    half_lr = kw.get("lr", OURS[name]([Param(np.zeros(1, np.float32))]).defaults["lr"]) / 2
    opt = OURS[name]([{"params": ours[:1]}, {"params": ours[1:], "lr": half_lr}], **kw)
    for grads in seq[:3]:
        _give_grads(ours, grads)
        opt.step()
    saved = opt.state_dict()
    copies = [Param(p.data) for p in ours]
    for grads in seq[3:]:
        _give_grads(ours, grads)
        opt.step()

    fresh = OURS[name]([{"params": copies[:1]}, {"params": copies[1:]}], **kw)
    fresh.load_state_dict(copy.deepcopy(saved))
    assert fresh.param_groups[1]["lr"] == half_lr
    for grads in seq[3:]:
        _give_grads(copies, grads)
        fresh.step()
    for a, b in zip(ours, copies, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    for key, value in opt.state[ours[1]].items():
        np.testing.assert_array_equal(value, fresh.state[copies[1]][key], err_msg=key)


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_torch_state_dict_loads_and_torch_loads_ours(config):
    name, kw = config
    shapes = [(3,), (2, 2)]
    ours, theirs, rng = _make_pair(shapes)
    seq = _grad_sequence(rng, shapes, 8)
    topt = _torch_opt(name, theirs, kw)
    for grads in seq[:4]:
        _set_grads(ours, theirs, grads)
        topt.step()
    tsd = topt.state_dict()  # scalars such as mu_product, eta, mu are 0-d float32 tensors here
    converted = {
        "state": {i: {k: v.numpy().copy() for k, v in s.items()} for i, s in tsd["state"].items()},
        "param_groups": copy.deepcopy(tsd["param_groups"]),
    }
    for p, t in zip(ours, theirs, strict=True):
        p.data[...] = t.detach().numpy()
    opt = OURS[name](ours, **kw)
    opt.load_state_dict(converted)
    assert all(type(v) is float for s in opt.state.values() for k, v in s.items() if k in SCALAR_STATE)
    sd = opt.state_dict()
    theirs2 = [torch.tensor(p.array.copy(), requires_grad=True) for p in ours]
    topt2 = _torch_opt(name, theirs2, kw)
    topt2.load_state_dict({
        "state": {i: {k: torch.tensor(v) for k, v in s.items()} for i, s in sd["state"].items()},
        "param_groups": sd["param_groups"],
    })
    for grads in seq[4:]:
        _set_grads(ours, theirs, grads)
        _set_grads(ours, theirs2, grads)
        opt.step()
        topt.step()
        topt2.step()
        _assert_close(ours, theirs)
        _assert_close(ours, theirs2)


def test_load_refuses_a_state_of_the_wrong_shape():
    p = Param(np.ones(3, np.float32))
    opt = NAdam([p])
    p.grad = Grad(np.ones(3, np.float32))
    opt.step()
    bad = opt.state_dict()
    bad["state"][0]["exp_avg_sq"] = np.zeros(4, np.float32)
    target = NAdam([Param(np.ones(3, np.float32))], lr=0.5)
    with pytest.raises(ValueError, match=r"'exp_avg_sq' of parameter 0 has shape \(4,\)"):
        target.load_state_dict(bad)
    assert target.param_groups[0]["lr"] == 0.5 and len(target.state) == 0


# --------------------------------------------------------------------------------------- schedulers, errors


@pytest.mark.parametrize("name", sorted(OURS))
def test_step_lr_schedules_them_like_torch(name):
    ours, theirs, rng = _make_pair(SHAPES)
    opt, topt = OURS[name](ours, lr=0.05), _torch_opt(name, theirs, {"lr": 0.05})
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=2, gamma=0.5)
    for epoch, grads in enumerate(_grad_sequence(rng, SHAPES, 7)):
        assert opt.param_groups[0]["lr"] == topt.param_groups[0]["lr"] == 0.05 * 0.5 ** (epoch // 2)
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        _assert_close(ours, theirs, msg=f"epoch {epoch}")


@pytest.mark.parametrize(
    "cls, kw, message",
    [
        (Adadelta, dict(lr=-1.0), "Invalid learning rate: -1.0"),
        (Adadelta, dict(rho=1.5), "Invalid rho value: 1.5"),
        (Adadelta, dict(rho=-0.1), "Invalid rho value: -0.1"),
        (Adadelta, dict(eps=-1e-6), "Invalid epsilon value: -1e-06"),
        (Adadelta, dict(weight_decay=-1), "Invalid weight_decay value: -1"),
        (Adamax, dict(lr=-0.1), "Invalid learning rate: -0.1"),
        (Adamax, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (Adamax, dict(betas=(0.9, -0.5)), "Invalid beta parameter at index 1: -0.5"),
        (NAdam, dict(lr=-2), "Invalid learning rate: -2"),
        (NAdam, dict(betas=(0.9, 1.0)), "Invalid beta parameter at index 1: 1.0"),
        (NAdam, dict(momentum_decay=-0.1), "Invalid momentum_decay value: -0.1"),
        (NAdam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
        (RAdam, dict(lr=-1e-3), "Invalid learning rate: -0.001"),
        (RAdam, dict(betas=(-0.1, 0.9)), r"Invalid beta parameter at index 0: -0.1"),
        (RAdam, dict(weight_decay=-0.5), "Invalid weight_decay value: -0.5"),
        (ASGD, dict(lr=-0.01), "Invalid learning rate: -0.01"),
        (ASGD, dict(weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
    ],
)
def test_bad_arguments_refused_with_torchs_messages(cls, kw, message):
    with pytest.raises(ValueError, match=f"^{message}$") as ours:
        cls([Param(np.zeros(1, np.float32))], **kw)
    with pytest.raises(ValueError) as theirs:
        getattr(torch.optim, cls.__name__)([torch.zeros(1, requires_grad=True)], **kw)
    assert str(ours.value) == str(theirs.value)


def test_step_leaves_the_gradient_alone_and_updates_in_place():
    for name, cls in OURS.items():
        p = Param(np.ones((2, 2), np.float32))
        data = p.data
        g = np.arange(4, dtype=np.float32).reshape(2, 2) - 1.5
        p.grad = Grad(g.copy())
        opt = cls([p], lr=0.1, weight_decay=0.1, maximize=True)
        opt.step()
        opt.step()
        np.testing.assert_array_equal(p.grad.data, g, err_msg=name)
        assert p.array is data and p.data.dtype == np.float32, name
        assert not np.array_equal(p.data, np.ones((2, 2), np.float32)), name
