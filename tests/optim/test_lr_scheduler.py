"""Schedulers against torch.optim.lr_scheduler: same lr (and momentum / beta1) after every step."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from numcnn.optim import SGD, Adagrad, Adam, AdamW, RMSprop, lr_scheduler
from param_standins import Param

torch = pytest.importorskip("torch")


OPTIMIZERS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW, "RMSprop": RMSprop, "Adagrad": Adagrad}


def _pair(opt_name="SGD", lrs=(0.1, 0.03), **opt_kw):
    """Our optimizer and torch's, with one param group per lr."""
    ours = OPTIMIZERS[opt_name]([{"params": [Param()], "lr": lr} for lr in lrs], **opt_kw)
    theirs = getattr(torch.optim, opt_name)(
        [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs], **opt_kw
    )
    return ours, theirs


def _step_both(sched, tsched, topt):
    topt.step()  # no gradients: changes nothing, keeps torch from warning about the call order
    sched.step()
    tsched.step()


def _assert_same_groups(opt, topt, keys=("lr",)):
    for group, tgroup in zip(opt.param_groups, topt.param_groups, strict=True):
        for key in keys:
            assert group[key] == tgroup[key], key  # same formulas in the same order: bit-equal


class Halving:
    """A callable object: its __dict__ is saved in LambdaLR.state_dict."""

    def __init__(self, every):
        self.every = every

    def __call__(self, epoch):
        return 0.5 ** (epoch // self.every)


SCHEDULERS = [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=4, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 11])),
    ("MultiStepLR", dict(milestones=[10, 3], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=1e-3)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e))),
    ("LambdaLR", dict(lr_lambda=[lambda e: 0.95**e, Halving(4)])),
]


def _sched_ids(config):
    name, kw = config
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items() if k != "lr_lambda")


@pytest.mark.parametrize("config", SCHEDULERS, ids=_sched_ids)
def test_lr_sequence_matches_torch(config):
    name, kw = config
    opt, topt = _pair("SGD", momentum=0.9)
    sched = getattr(lr_scheduler, name)(opt, **kw)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    # construction stores initial_lr and performs the epoch-0 step
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]
    assert sched.base_lrs == tsched.base_lrs
    assert sched.last_epoch == tsched.last_epoch == 0
    for epoch in range(40):  # past T_max: cosine goes back up, as torch's does
        assert sched.get_last_lr() == tsched.get_last_lr(), epoch
        _assert_same_groups(opt, topt)
        _step_both(sched, tsched, topt)
    assert sched.last_epoch == tsched.last_epoch == 40


def test_cosine_follows_the_closed_form_by_hand():
    opt = SGD([Param()], lr=1.0)
    sched = lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.2)
    for t in range(1, 9):
        sched.step()
        expected = 0.2 + (1.0 - 0.2) * (1 + math.cos(math.pi * t / 8)) / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)


def test_step_lr_by_hand():
    opt = SGD([Param()], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for _ in range(6):
        seen.append(sched.get_last_lr()[0])
        sched.step()
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


ONECYCLE = [
    ("SGD", dict(max_lr=0.5, total_steps=30), {"momentum": 0.9}),
    ("SGD", dict(max_lr=[0.5, 0.2], epochs=4, steps_per_epoch=7, anneal_strategy="linear"), {"momentum": 0}),
    ("SGD", dict(max_lr=0.3, total_steps=25, three_phase=True, pct_start=0.4), {"momentum": 0.9}),
    ("SGD", dict(max_lr=0.3, total_steps=20, cycle_momentum=False, div_factor=5.0, final_div_factor=1e2), {}),
    ("Adam", dict(max_lr=0.01, total_steps=30), {}),
    ("AdamW", dict(max_lr=0.01, total_steps=17, base_momentum=[0.8, 0.7], max_momentum=0.99), {}),
    ("RMSprop", dict(max_lr=0.01, total_steps=12, three_phase=True, anneal_strategy="linear"), {}),
]


@pytest.mark.parametrize("opt_name, kw, opt_kw", ONECYCLE)
def test_onecycle_matches_torch_lr_and_momentum(opt_name, kw, opt_kw):
    opt, topt = _pair(opt_name, **opt_kw)
    sched = lr_scheduler.OneCycleLR(opt, **kw)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, **kw)
    keys = ["lr", "initial_lr", "max_lr", "min_lr"]
    if kw.get("cycle_momentum", True):
        keys += ["max_momentum", "base_momentum"]
    total = tsched.total_steps
    for step in range(total):
        _assert_same_groups(opt, topt, keys)
        assert sched.get_last_lr() == tsched.get_last_lr()
        for group, tgroup in zip(opt.param_groups, topt.param_groups, strict=True):
            if "betas" in tgroup:
                assert group["betas"][0] == tgroup["betas"][0], step
                assert group["betas"][1] == tgroup["betas"][1]
            if "momentum" in tgroup:
                assert group["momentum"] == tgroup["momentum"], step
        if step < total - 1:
            _step_both(sched, tsched, topt)
    # the last step reaches min_lr = max_lr / div_factor / final_div_factor
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(group["min_lr"], rel=1e-9)


def test_onecycle_by_hand_and_too_many_steps():
    opt = SGD([Param()], lr=1.0, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=11, pct_start=0.5, anneal_strategy="linear")
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(1.0 / 25) and group["momentum"] == 0.95
    for _ in range(4):  # the first phase ends at step pct_start * total - 1 = 4.5
        sched.step()
    assert group["lr"] == pytest.approx(1 / 25 + (1 - 1 / 25) * 4 / 4.5)
    assert group["momentum"] == pytest.approx(0.95 + (0.85 - 0.95) * 4 / 4.5)
    for _ in range(7):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 12 times. The specified number of total steps is 11"):
        sched.step()


def test_onecycle_drives_the_optimizer_like_torch():
    rng = np.random.default_rng(0)
    init = rng.standard_normal((3, 2)).astype(np.float32)
    p = Param()
    p.data = init.copy()
    t = torch.tensor(init.copy(), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    topt = torch.optim.SGD([t], lr=0.1, momentum=0.9, nesterov=True, foreach=False)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=15)
    tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.2, total_steps=15)
    for _ in range(14):
        g = rng.standard_normal((3, 2)).astype(np.float32)
        p.grad = type("G", (), {"array": g.copy()})()
        t.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(max_lr=0.1), "total_steps OR"),
        (dict(max_lr=0.1, total_steps=0), "positive integer total_steps"),
        (dict(max_lr=0.1, epochs=0, steps_per_epoch=3), "positive integer epochs"),
        (dict(max_lr=0.1, epochs=2, steps_per_epoch=1.5), "positive integer steps_per_epoch"),
        (dict(max_lr=0.1, total_steps=10, pct_start=1.5), "pct_start"),
        (dict(max_lr=0.1, total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
        (dict(max_lr=[0.1, 0.2, 0.3], total_steps=10), "max_lr must have the same length"),
    ],
)
def test_onecycle_validation_like_torch(kw, message):
    opt, topt = _pair("SGD", momentum=0.9)
    with pytest.raises(ValueError, match=message):
        lr_scheduler.OneCycleLR(opt, **kw)
    with pytest.raises(ValueError, match=message):
        torch.optim.lr_scheduler.OneCycleLR(topt, **kw)


def test_onecycle_needs_momentum_or_betas():
    opt = Adagrad([Param()])
    with pytest.raises(ValueError, match="momentum or beta1"):
        lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=5, cycle_momentum=False)
    assert sched.get_last_lr() == [pytest.approx(0.1 / 25)]


def test_scheduler_refuses_non_optimizer_and_resume_without_initial_lr():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), step_size=2)
    opt = SGD([Param()], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, step_size=2, last_epoch=3)


@pytest.mark.parametrize("config", SCHEDULERS, ids=_sched_ids)
def test_resume_from_state_dicts(config):
    name, kw = config

    def make():
        opt = SGD([{"params": [Param()], "lr": 0.1}, {"params": [Param()], "lr": 0.03}], momentum=0.9)
        return opt, getattr(lr_scheduler, name)(opt, **kw)

    opt, sched = make()
    for _ in range(6):
        sched.step()
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in sched_state
    expected = []
    for _ in range(15):
        sched.step()
        expected.append(sched.get_last_lr())

    # torch's recipe: build the scheduler, then load the optimizer, then the scheduler
    opt2, sched2 = make()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    assert sched2.last_epoch == 6
    got = []
    for _ in range(15):
        sched2.step()
        got.append(sched2.get_last_lr())
    assert got == expected


def test_onecycle_resume_from_state_dicts_with_adam():
    def make():
        opt = Adam([Param()], lr=0.01)
        return opt, lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=20)

    opt, sched = make()
    for _ in range(7):
        sched.step()
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    expected = []
    for _ in range(12):
        sched.step()
        expected.append((sched.get_last_lr(), opt.param_groups[0]["betas"]))
    opt2, sched2 = make()
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    got = []
    for _ in range(12):
        sched2.step()
        got.append((sched2.get_last_lr(), opt2.param_groups[0]["betas"]))
    assert got == expected


def test_state_dict_keys_are_torchs_and_values_equal():
    opt, topt = _pair("SGD", momentum=0.9)
    sched = lr_scheduler.MultiStepLR(opt, milestones=[2, 4])
    tsched = torch.optim.lr_scheduler.MultiStepLR(topt, milestones=[2, 4])
    for _ in range(3):
        _step_both(sched, tsched, topt)
    sd, tsd = sched.state_dict(), tsched.state_dict()
    assert set(sd) <= set(tsd)
    for key, value in sd.items():
        assert tsd[key] == value, key


def test_state_dict_is_a_copy():
    opt = SGD([Param()], lr=0.1)
    sched = lr_scheduler.MultiStepLR(opt, milestones=[1, 2])
    saved = sched.state_dict()
    sched.milestones[7] = 1
    sched.step()
    assert saved["last_epoch"] == 0 and 7 not in saved["milestones"]


def test_lambda_lr_saves_callable_objects_only():
    opt, topt = _pair("SGD")
    fn, tfn = Halving(3), Halving(3)
    sched = lr_scheduler.LambdaLR(opt, [lambda e: 1.0, fn])
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, [lambda e: 1.0, tfn])
    sd, tsd = sched.state_dict(), tsched.state_dict()
    assert sd["lr_lambdas"] == tsd["lr_lambdas"] == [None, {"every": 3}]
    other = Halving(10)
    sched2 = lr_scheduler.LambdaLR(SGD([{"params": [Param()]}, {"params": [Param()]}], lr=0.1),
                                   [lambda e: 1.0, other])
    sched2.load_state_dict(sd)
    assert other.every == 3
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1.0])


def test_scheduler_on_adam_changes_its_lr():
    opt = Adam([Param()], lr=0.1)
    sched = lr_scheduler.ExponentialLR(opt, gamma=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert sched.get_last_lr() == [pytest.approx(0.025)]
