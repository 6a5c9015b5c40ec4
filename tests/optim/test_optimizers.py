"""Optimizers against torch.optim: same gradient sequences in, same parameters out after every step."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numcnn.optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from param_standins import Grad, Param

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-5, 1e-6
SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]


OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop, "Adagrad": Adagrad}

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "maximize": True}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.5), "weight_decay": 0.05, "decoupled_weight_decay": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.3, "amsgrad": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.9, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.3, "centered": True, "maximize": True}),
    ("RMSprop", {"lr": 0.005, "centered": True, "momentum": 0.5, "eps": 1e-4}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3, "maximize": True}),
]


def _ids(config):
    name, kw = config
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


def _torch_opt(name, params, kw, **extra):
    # foreach=False: torch's single-tensor path, whose formula order ours follows.
    return getattr(torch.optim, name)(params, foreach=False, **kw, **extra)


def _make_pair(name, kw, shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in shapes]
    ours = [Param(a) for a in inits]
    theirs = [torch.tensor(a, requires_grad=True) for a in inits]
    return ours, theirs, rng


def _set_grads(ours, theirs, grads):
    for p, t, g in zip(ours, theirs, grads, strict=True):
        p.grad = None if g is None else Grad(np.array(g, copy=True))
        t.grad = None if g is None else torch.tensor(np.array(g, copy=True))


def _assert_close(ours, theirs, rtol=RTOL, atol=ATOL, msg=""):
    for i, (p, t) in enumerate(zip(ours, theirs, strict=True)):
        np.testing.assert_allclose(
            p.data, t.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{msg} param {i}"
        )


def _grad_sequence(rng, shapes, steps, dtype=np.float32, none_every=0):
    seq = []
    for k in range(steps):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        if none_every and k % none_every == 1:
            grads[0] = None  # a parameter without gradient this step must be skipped
        seq.append(grads)
    return seq


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_matches_torch_step_by_step(config):
    name, kw = config
    ours, theirs, rng = _make_pair(name, kw, SHAPES)
    opt = OURS[name](ours, **kw)
    topt = _torch_opt(name, theirs, kw)
    for k, grads in enumerate(_grad_sequence(rng, SHAPES, 25, none_every=4)):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs, msg=f"step {k}")


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_float64_parameters_stay_float64(config):
    name, kw = config
    ours, theirs, rng = _make_pair(name, kw, SHAPES, dtype=np.float64)
    opt = OURS[name](ours, **kw)
    topt = _torch_opt(name, theirs, kw)
    for grads in _grad_sequence(rng, SHAPES, 8, dtype=np.float64):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
    _assert_close(ours, theirs, rtol=1e-12, atol=1e-13)
    for p in ours:
        assert p.data.dtype == np.float64
        for value in opt.state[p].values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float64


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_state_matches_torch_state(config):
    name, kw = config
    ours, theirs, rng = _make_pair(name, kw, SHAPES)
    opt = OURS[name](ours, **kw)
    topt = _torch_opt(name, theirs, kw)
    for grads in _grad_sequence(rng, SHAPES, 5):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sd["state"].keys() == tsd["state"].keys()
    for index, state in sd["state"].items():
        tstate = tsd["state"][index]
        assert list(state) == list(tstate)
        for key, value in state.items():
            if key == "step":
                assert type(value) is float and value == tstate[key].item()
            else:
                assert value.dtype == np.float32 and value.shape == SHAPES[index]
                np.testing.assert_allclose(value, tstate[key].numpy(), rtol=RTOL, atol=ATOL)
    for group, tgroup in zip(sd["param_groups"], tsd["param_groups"], strict=True):
        assert group["params"] == tgroup["params"]
        for key, value in group.items():
            assert tgroup[key] == value, key


@given(
    lr=st.floats(1e-4, 0.5),
    momentum=st.sampled_from([0.0, 0.5, 0.9]),
    dampening=st.sampled_from([0.0, 0.2]),
    weight_decay=st.sampled_from([0.0, 1e-3, 0.1]),
    nesterov=st.booleans(),
    maximize=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sgd_random_options(lr, momentum, dampening, weight_decay, nesterov, maximize, seed):
    if nesterov and (momentum == 0 or dampening != 0):
        nesterov = False
    kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
              nesterov=nesterov, maximize=maximize)
    ours, theirs, rng = _make_pair("SGD", kw, [(4, 3)], seed=seed)
    opt, topt = SGD(ours, **kw), _torch_opt("SGD", theirs, kw)
    for grads in _grad_sequence(rng, [(4, 3)], 6):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs)


@given(
    name=st.sampled_from(["Adam", "AdamW"]),
    lr=st.floats(1e-4, 0.1),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    weight_decay=st.sampled_from([0.0, 1e-2, 0.3]),
    amsgrad=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_adam_random_options(name, lr, beta1, beta2, eps, weight_decay, amsgrad, seed):
    kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
    ours, theirs, rng = _make_pair(name, kw, [(4, 3)], seed=seed)
    opt, topt = OURS[name](ours, **kw), _torch_opt(name, theirs, kw)
    for grads in _grad_sequence(rng, [(4, 3)], 6):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs)


@given(
    lr=st.floats(1e-4, 0.1),
    alpha=st.floats(0.0, 0.999),
    momentum=st.sampled_from([0.0, 0.9]),
    centered=st.booleans(),
    weight_decay=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_rmsprop_random_options(lr, alpha, momentum, centered, weight_decay, seed):
    if centered:
        # sqrt(E[g^2] - E[g]^2) cancels catastrophically when alpha is near 0 (torch then gives NaN)
        alpha = max(alpha, 0.5)
    kw = dict(lr=lr, alpha=alpha, momentum=momentum, centered=centered, weight_decay=weight_decay)
    ours, theirs, rng = _make_pair("RMSprop", kw, [(4, 3)], seed=seed)
    opt, topt = RMSprop(ours, **kw), _torch_opt("RMSprop", theirs, kw)
    for grads in _grad_sequence(rng, [(4, 3)], 6):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs)


@given(
    lr=st.floats(1e-3, 0.5),
    lr_decay=st.sampled_from([0.0, 0.1]),
    init=st.sampled_from([0.0, 0.1, 1.0]),
    weight_decay=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_adagrad_random_options(lr, lr_decay, init, weight_decay, seed):
    kw = dict(lr=lr, lr_decay=lr_decay, initial_accumulator_value=init, weight_decay=weight_decay)
    ours, theirs, rng = _make_pair("Adagrad", kw, [(4, 3)], seed=seed)
    opt, topt = Adagrad(ours, **kw), _torch_opt("Adagrad", theirs, kw)
    for grads in _grad_sequence(rng, [(4, 3)], 6):
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs)


def test_first_steps_by_hand():
    # SGD momentum 0.9, lr 0.1, g = 1: b1 = 1, p1 = -0.1; b2 = 1.9, p2 = -0.29
    p = Param(np.zeros(2, np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    for _ in range(2):
        p.grad = Grad(np.ones(2, np.float32))
        opt.step()
    np.testing.assert_allclose(p.data, [-0.29, -0.29], rtol=1e-6)
    # Adam's first step moves every coordinate by lr * g / (|g| + eps') = lr * sign(g)
    p = Param(np.zeros(3, np.float32))
    p.grad = Grad(np.array([2.0, -0.5, 1e-3], np.float32))
    Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01], rtol=1e-4)


def test_param_groups_with_own_options_and_add_param_group():
    shapes = [(3,), (2, 2), (4,)]
    ours, theirs, rng = _make_pair("Adam", {}, shapes)
    opt = Adam([{"params": ours[:1]}, {"params": ours[1:2], "lr": 0.05, "betas": (0.5, 0.9)}], lr=0.01)
    topt = torch.optim.Adam(
        [{"params": theirs[:1]}, {"params": theirs[1:2], "lr": 0.05, "betas": (0.5, 0.9)}],
        lr=0.01, foreach=False,
    )
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.05]
    assert opt.param_groups[1]["eps"] == 1e-8  # missing options filled from the defaults
    for k, grads in enumerate(_grad_sequence(rng, shapes, 10)):
        if k == 4:
            opt.add_param_group({"params": [ours[2]], "weight_decay": 0.1})
            topt.add_param_group({"params": [theirs[2]], "weight_decay": 0.1})
        if k < 4:
            grads[2] = None
        _set_grads(ours, theirs, grads)
        opt.step()
        topt.step()
        _assert_close(ours, theirs, msg=f"step {k}")
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [ours[0]]})
    with pytest.raises(TypeError, match="sets"):
        opt.add_param_group({"params": {Param(np.zeros(1, np.float32))}})


def test_named_parameters_are_stored_as_param_names():
    a, b = Param(np.zeros(2, np.float32)), Param(np.ones(2, np.float32))
    opt = SGD([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [Param(np.zeros(1, np.float32))]})


def test_grad_none_is_skipped_and_creates_no_state():
    a, b = Param(np.ones(3, np.float32)), Param(np.ones(3, np.float32))
    for cls in (SGD, Adam, RMSprop):
        opt = cls([a, b], lr=0.1, **({"momentum": 0.9} if cls is SGD else {}))
        b.grad = None
        a.grad = Grad(np.full(3, 0.5, np.float32))
        before = b.array.copy()
        opt.step()
        np.testing.assert_array_equal(b.data, before)
        assert b not in opt.state and a in opt.state


def test_sgd_without_momentum_keeps_no_state_like_torch():
    p = Param(np.ones(2, np.float32))
    opt = SGD([p], lr=0.5)
    p.grad = Grad(np.ones(2, np.float32))
    opt.step()
    assert opt.state_dict()["state"] == {}
    np.testing.assert_array_equal(p.data, [0.5, 0.5])


def test_step_does_not_modify_the_gradient_and_updates_in_place():
    for cls, kw in [
        (SGD, dict(momentum=0.9)),  # the first buffer must be a copy of the gradient, not the gradient
        (SGD, dict(momentum=0.9, weight_decay=0.1, maximize=True)),
        (Adam, dict(weight_decay=0.1)),
        (RMSprop, dict(centered=True, momentum=0.5)),
        (Adagrad, dict(weight_decay=0.1)),
    ]:
        p = Param(np.ones((2, 2), np.float32))
        data = p.data
        g = np.arange(4, dtype=np.float32).reshape(2, 2)
        p.grad = Grad(g.copy())
        opt = cls([p], lr=0.1, **kw)
        opt.step()
        opt.step()
        np.testing.assert_array_equal(p.grad.data, g)
        assert p.array is data and p.data.dtype == np.float32
        assert not np.array_equal(p.data, np.ones((2, 2), np.float32))


def test_zero_grad():
    a, b = Param(np.ones(2, np.float32)), Param(np.ones(2, np.float32))
    opt = SGD([a, b], lr=0.1)
    a.grad = Grad(np.ones(2, np.float32))
    g = a.grad.data
    opt.zero_grad(set_to_none=False)
    assert a.grad.array is g
    np.testing.assert_array_equal(g, [0.0, 0.0])
    assert b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_step_calls_closure_once_and_returns_its_loss():
    p = Param(np.array([3.0], np.float32))
    opt = SGD([p], lr=0.25)
    calls = []

    def closure():
        calls.append(1)
        p.grad = Grad(2 * p.data)  # loss p^2
        return float(p.data[0] ** 2)

    assert opt.step(closure) == 9.0
    assert calls == [1]
    np.testing.assert_array_equal(p.data, [1.5])  # 3 - 0.25 * 6


def test_bad_gradient_is_refused_with_a_clear_message():
    p = Param(np.ones((2, 3), np.float32))
    opt = SGD([p], lr=0.1)
    p.grad = Grad(np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"gradient of shape \(3, 2\) .* shape \(2, 3\)"):
        opt.step()
    p.grad = Grad(np.ones((2, 3), np.float64))
    with pytest.raises(TypeError, match="float64"):
        opt.step()


@pytest.mark.parametrize(
    "cls, kw, message",
    [
        (SGD, dict(lr=-1), "Invalid learning rate: -1"),
        (SGD, dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
        (SGD, dict(lr=0.1, weight_decay=-1), "Invalid weight_decay value: -1"),
        (SGD, dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
        (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
        (Adam, dict(lr=-0.1), "Invalid learning rate: -0.1"),
        (Adam, dict(eps=-1.0), "Invalid epsilon value: -1.0"),
        (Adam, dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (AdamW, dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (AdamW, dict(weight_decay=-0.01), "Invalid weight_decay value: -0.01"),
        (RMSprop, dict(alpha=-0.5), "Invalid alpha value: -0.5"),
        (RMSprop, dict(momentum=-1), "Invalid momentum value: -1"),
        (RMSprop, dict(eps=-1e-8), "Invalid epsilon value"),
        (Adagrad, dict(lr_decay=-1), "Invalid lr_decay value: -1"),
        (Adagrad, dict(initial_accumulator_value=-1), "Invalid initial_accumulator_value value: -1"),
    ],
)
def test_constructor_validation_like_torch(cls, kw, message):
    p = Param(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match=message):
        cls([p], **kw)
    t = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match=message):
        getattr(torch.optim, cls.__name__)([t], **kw)


def test_constructor_refuses_bad_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable of parameters"):
        SGD(Param(np.zeros(1, np.float32)), lr=0.1)
    with pytest.raises(TypeError, match="can only optimize parameters"):
        SGD([np.zeros(3, np.float32)], lr=0.1)


def test_defaults_match_torch():
    p = Param(np.zeros(1, np.float32))
    t = torch.zeros(1, requires_grad=True)
    for name, cls in OURS.items():
        ours = cls([p]).param_groups[0]
        theirs = getattr(torch.optim, name)([t]).param_groups[0]
        for key, value in ours.items():
            if key != "params":
                assert theirs[key] == value, (name, key)


# ------------------------------------------------------------------------------------------- state dict


def _give_grads(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = None if g is None else Grad(np.array(g, copy=True))


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_exact_resume_from_state_dict(config):
    name, kw = config
    shapes = [(3, 2), (4,)]
    ours, _, rng = _make_pair(name, kw, shapes)
    seq = _grad_sequence(rng, shapes, 12, none_every=5)
    half_lr = kw.get("lr", 0.01) / 2

    opt = OURS[name]([{"params": ours[:1]}, {"params": ours[1:], "lr": half_lr}], **kw)
    for grads in seq[:6]:
        _give_grads(ours, grads)
        opt.step()
    saved = opt.state_dict()
    copies = [Param(p.data) for p in ours]
    for grads in seq[6:]:
        _give_grads(ours, grads)
        opt.step()

    fresh = OURS[name]([{"params": copies[:1]}, {"params": copies[1:]}], **kw)
    fresh.load_state_dict(saved)
    assert fresh.param_groups[1]["lr"] == half_lr
    for grads in seq[6:]:
        _give_grads(copies, grads)
        fresh.step()
    for a, b in zip(ours, copies, strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_is_a_deep_copy():
    p = Param(np.ones(3, np.float32))
    opt = Adam([p], lr=0.1)
    p.grad = Grad(np.ones(3, np.float32))
    opt.step()
    saved = opt.state_dict()
    snapshot = copy.deepcopy(saved)
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    assert saved["state"][0]["step"] == snapshot["state"][0]["step"] == 1.0
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], snapshot["state"][0]["exp_avg"])
    assert saved["param_groups"][0]["lr"] == 0.1
    # and loading copies too: stepping after a load leaves the loaded dict alone
    fresh_p = Param(p.data)
    fresh = Adam([fresh_p], lr=0.1)
    fresh.load_state_dict(saved)
    fresh_p.grad = Grad(np.ones(3, np.float32))
    fresh.step()
    np.testing.assert_array_equal(saved["state"][0]["exp_avg"], snapshot["state"][0]["exp_avg"])


def test_state_dict_indices_run_across_groups():
    ps = [Param(np.full(2, i, np.float32)) for i in range(3)]
    opt = SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.5}], lr=0.1, momentum=0.9)
    for p in ps:
        p.grad = Grad(np.ones(2, np.float32))
    opt.step()
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2]]
    assert sorted(sd["state"]) == [0, 1, 2]
    np.testing.assert_array_equal(sd["state"][2]["momentum_buffer"], [1.0, 1.0])


@pytest.mark.parametrize(
    "name, kw",
    [
        ("Adam", {"lr": 0.01, "amsgrad": True}),
        ("SGD", {"lr": 0.1, "momentum": 0.9}),
        ("RMSprop", {"centered": True}),
        ("Adagrad", {"lr_decay": 0.1}),
    ],
)
def test_load_torch_state_dict_and_torch_loads_ours(name, kw):
    shapes = [(3,), (2, 2)]
    ours, theirs, rng = _make_pair(name, kw, shapes)
    seq = _grad_sequence(rng, shapes, 8)
    topt = _torch_opt(name, theirs, kw)
    for grads in seq[:4]:
        _set_grads(ours, theirs, grads)
        topt.step()
    # a torch state dict converted to NumPy loads as is
    tsd = topt.state_dict()
    converted = {
        "state": {i: {k: v.numpy().copy() for k, v in s.items()} for i, s in tsd["state"].items()},
        "param_groups": copy.deepcopy(tsd["param_groups"]),
    }
    for p, t in zip(ours, theirs, strict=True):
        p.data[...] = t.detach().numpy()
    opt = OURS[name](ours, **kw)
    opt.load_state_dict(converted)
    assert all(type(s["step"]) is float for s in opt.state.values() if "step" in s)
    # torch loads ours (as tensors) into a fresh optimizer
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


def test_load_state_dict_validates_and_changes_nothing_on_error():
    a, b = Param(np.ones(3, np.float32)), Param(np.ones((2, 2), np.float32))
    opt = Adam([a, b], lr=0.1)
    for p in (a, b):
        p.grad = Grad(np.ones_like(p.data))
    opt.step()
    good = opt.state_dict()

    other = Adam([Param(np.ones(3, np.float32))], lr=0.1)
    with pytest.raises(ValueError, match="1 parameters, but the optimizer's group 0 has 2|2 parameters"):
        other.load_state_dict(good)
    two_groups = Adam([{"params": [a]}, {"params": [b]}], lr=0.1)
    with pytest.raises(ValueError, match="1 parameter groups, but the optimizer has 2"):
        two_groups.load_state_dict(good)

    bad = copy.deepcopy(good)
    bad["state"][1]["exp_avg_sq"] = np.zeros((4,), np.float32)
    target_a, target_b = Param(a.data), Param(b.data)
    target = Adam([target_a, target_b], lr=0.3)
    with pytest.raises(ValueError, match=r"'exp_avg_sq' of parameter 1 has shape \(4,\).*\(2, 2\)"):
        target.load_state_dict(bad)
    assert target.param_groups[0]["lr"] == 0.3 and len(target.state) == 0

    as_text = copy.deepcopy(good)
    as_text["state"] = {str(k): v for k, v in as_text["state"].items()}
    target.load_state_dict(as_text)
    np.testing.assert_array_equal(target.state[target_b]["exp_avg"], good["state"][1]["exp_avg"])

    bad = copy.deepcopy(good)
    bad["state"][7] = bad["state"].pop(1)
    with pytest.raises(ValueError, match="parameter 7"):
        target.load_state_dict(bad)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        target.load_state_dict({"state": {}})


def test_loaded_state_takes_the_parameter_dtype():
    p = Param(np.ones(2, np.float32))
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.load_state_dict({
        "state": {0: {"momentum_buffer": np.array([1.0, 2.0])}},  # float64 in the file
        "param_groups": [{"lr": 0.1, "momentum": 0.9, "dampening": 0, "weight_decay": 0, "nesterov": False,
                          "maximize": False, "params": [0]}],
    })
    assert opt.state[p]["momentum_buffer"].dtype == np.float32
    p.grad = Grad(np.zeros(2, np.float32))
    opt.step()
    np.testing.assert_allclose(p.data, [1 - 0.1 * 0.9, 1 - 0.1 * 1.8], rtol=1e-6)


def test_adamw_stays_decoupled_after_loading_adam_state():
    p = Param(np.ones(2, np.float32))
    adam = Adam([p], lr=0.1, weight_decay=0.5)
    adamw = AdamW([Param(np.ones(2, np.float32))], lr=0.1, weight_decay=0.5)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True


def test_adagrad_state_exists_before_the_first_step_like_torch():
    p = Param(np.zeros(3, np.float32))
    sd = Adagrad([p], initial_accumulator_value=0.25).state_dict()
    t = torch.zeros(3, requires_grad=True)
    tsd = torch.optim.Adagrad([t], initial_accumulator_value=0.25).state_dict()
    assert sd["state"][0]["step"] == tsd["state"][0]["step"].item() == 0.0
    np.testing.assert_array_equal(sd["state"][0]["sum"], tsd["state"][0]["sum"].numpy())


def test_optimizer_base_is_usable_for_new_rules():
    class SignSGD(Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def _update(self, p, grad, group):
            p.data -= group["lr"] * np.sign(grad)

    p = Param(np.zeros(3, np.float32))
    p.grad = Grad(np.array([-2.0, 0.0, 5.0], np.float32))
    SignSGD([p]).step()
    np.testing.assert_allclose(p.data, [0.1, 0.0, -0.1])
    with pytest.raises(NotImplementedError):
        Optimizer([p], {}).step()
