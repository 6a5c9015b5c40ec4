"""Module mechanics against torch.nn.Module: traversal order and names, train/eval, zero_grad, state_dict and
load_state_dict (strict and not), forward hooks, a shared layer, and nn.utils (clip_grad_norm_, penalties)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import numcnn
import numcnn.nn as nn
from numcnn.nn import utils

torch = pytest.importorskip("torch")


def _build(m):
    """The same nested model in numcnn (m = numcnn.nn) and torch (m = torch.nn)."""

    class Block(m.Module):
        def __init__(self):
            super().__init__()
            self.conv = m.Conv2d(2, 3, 3, padding=1)
            self.bn = m.BatchNorm2d(3)
            self.skip = m.Conv2d(2, 3, 1, bias=False)

        def forward(self, x):
            return self.bn(self.conv(x)) + self.skip(x)

    class Net(m.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.scale = m.Parameter(np.ones(1, dtype=np.float32) if m is nn else torch.ones(1))
            self.heads = m.ModuleList([m.Linear(12, 4), m.Linear(4, 2)])
            self.extra = m.ModuleDict({"act": m.ReLU(), "drop": m.Dropout(0.5)})
            self.tail = m.Sequential(OrderedDict([("flat", m.Flatten()), ("id", m.Identity())]))

        def forward(self, x):
            h = self.tail(self.block(x) * self.scale)
            return self.heads[1](self.extra["act"](self.heads[0](h[:, :12])))

    return Net()


def test_traversal_order_and_names_match_torch():
    nc_net, t_net = _build(nn), _build(torch.nn)
    assert [n for n, _ in nc_net.named_parameters()] == [n for n, _ in t_net.named_parameters()]
    assert [n for n, _ in nc_net.named_buffers()] == [n for n, _ in t_net.named_buffers()]
    assert [n for n, _ in nc_net.named_modules()] == [n for n, _ in t_net.named_modules()]
    assert [n for n, _ in nc_net.named_children()] == [n for n, _ in t_net.named_children()]
    assert [type(m).__name__ for m in nc_net.modules()] == [type(m).__name__ for m in t_net.modules()]
    assert [type(m).__name__ for m in nc_net.children()] == [type(m).__name__ for m in t_net.children()]
    assert list(nc_net.state_dict()) == list(t_net.state_dict())
    assert [tuple(p.shape) for p in nc_net.parameters()] == [tuple(p.shape) for p in t_net.parameters()]
    assert len(list(nc_net.parameters(recurse=False))) == 1


def test_shared_module_is_listed_once():
    lin = nn.Linear(2, 2)
    seq = nn.Sequential(lin, nn.ReLU(), lin)
    t_lin = torch.nn.Linear(2, 2)
    t_seq = torch.nn.Sequential(t_lin, torch.nn.ReLU(), t_lin)
    assert [n for n, _ in seq.named_parameters()] == [n for n, _ in t_seq.named_parameters()]
    assert [n for n, _ in seq.named_modules()] == [n for n, _ in t_seq.named_modules()]
    assert list(seq.state_dict()) == list(t_seq.state_dict())


def test_shared_layer_used_twice_gives_torchs_gradients(close):
    torch.manual_seed(0)
    t_conv = torch.nn.Conv2d(2, 2, 3, padding=1)
    conv = nn.Conv2d(2, 2, 3, padding=1)
    conv.load_state_dict({k: v.detach().numpy().copy() for k, v in t_conv.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5)).astype(np.float32)
    ty = t_conv(torch.relu(t_conv(torch.from_numpy(x))))
    (ty * ty).sum().backward()
    y = conv(nn.functional.relu(conv(numcnn.tensor(x))))
    (y * y).sum().backward()
    close(y.numpy(), ty.detach().numpy())
    close(conv.weight.grad.numpy(), t_conv.weight.grad.numpy())
    close(conv.bias.grad.numpy(), t_conv.bias.grad.numpy())


def test_train_eval_propagate():
    net = _build(nn)
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.block.train(False)
    assert [m.training for m in net.modules()][:5] == [True, False, False, False, False]


def test_zero_grad():
    lin = nn.Linear(3, 2)
    lin(numcnn.tensor(np.ones((1, 3), dtype=np.float32))).sum().backward()
    assert lin.weight.grad is not None
    lin.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(lin.weight.grad.numpy(), np.zeros((2, 3)))
    assert lin.weight.grad.dtype == np.float32
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_gradients_accumulate_like_torch(close):
    lin = nn.Linear(3, 2)
    t_lin = torch.nn.Linear(3, 2)
    lin.load_state_dict({k: v.detach().numpy().copy() for k, v in t_lin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for _ in range(2):
        lin(numcnn.tensor(x)).sum().backward()
        t_lin(torch.from_numpy(x)).sum().backward()
    close(lin.weight.grad.numpy(), t_lin.weight.grad.numpy())


# ---------------------------------------------------------------- state_dict


def test_state_dict_values_are_copies_of_the_live_parameters():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    np.testing.assert_array_equal(sd["weight"].numpy(), lin.weight.numpy())
    assert not sd["weight"].requires_grad
    assert lin.state_dict(keep_vars=True)["weight"] is lin.weight


def test_load_state_dict_strict_errors_name_the_keys():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    missing = dict(sd)
    del missing["1.running_var"]
    with pytest.raises(ValueError, match=r'Missing key\(s\): "1.running_var"'):
        net.load_state_dict(missing)
    extra = dict(sd, **{"2.weight": np.ones(3, dtype=np.float32)})
    with pytest.raises(ValueError, match=r'Unexpected key\(s\): "2.weight"'):
        net.load_state_dict(extra)
    wrong = dict(sd, **{"0.weight": np.ones((2, 3), dtype=np.float32)})
    with pytest.raises(ValueError, match=r'"0.weight".*\(2, 3\).*\(3, 2\)'):
        net.load_state_dict(wrong)
    with pytest.raises(ValueError, match=r'"0.weight".*\(2, 3\).*\(3, 2\)'):
        net.load_state_dict(wrong, strict=False)


def test_load_state_dict_failure_changes_nothing():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    bad = {k: np.zeros_like(v) for k, v in before.items()}
    bad["1.weight"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(ValueError):
        net.load_state_dict(bad)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_load_state_dict_non_strict_returns_key_lists():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    t_net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    del sd["0.bias"]
    sd["head.weight"] = np.zeros(1, dtype=np.float32)
    sd["0.weight"] = np.full((3, 2), 0.5, dtype=np.float32)
    res = net.load_state_dict(sd, strict=False)
    t_res = t_net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert list(res.missing_keys) == list(t_res.missing_keys) == ["0.bias"]
    assert list(res.unexpected_keys) == list(t_res.unexpected_keys) == ["head.weight"]
    np.testing.assert_array_equal(net[0].weight.numpy(), np.full((3, 2), 0.5))


def test_load_state_dict_accepts_tensors_and_keeps_parameter_identity():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    w = a.weight
    a.load_state_dict(b.state_dict())
    assert a.weight is w
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert a.weight.dtype == np.float32 and a.weight.requires_grad


# ---------------------------------------------------------------- hooks


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    seen = []

    def hook(module, inputs, output):
        seen.append((module, inputs, output))

    h = lin.register_forward_hook(hook)
    x = numcnn.tensor(np.ones((1, 2), dtype=np.float32))
    y = lin(x)
    assert len(seen) == 1 and seen[0][0] is lin and seen[0][1][0] is x and seen[0][2] is y
    h2 = lin.register_forward_hook(lambda m, i, o: o * 2)
    np.testing.assert_allclose(lin(x).numpy(), y.numpy() * 2)
    h.remove()
    h2.remove()
    lin(x)
    assert len(seen) == 2


# ---------------------------------------------------------------- nn.utils


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.1, 1e3])
def test_clip_grad_norm_matches_torch(close, norm_type, max_norm):
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (4,), (2, 2, 2)]]
    ps, tps = [], []
    for g in grads:
        p = nn.Parameter(np.zeros(g.shape, dtype=np.float32))
        p.grad = numcnn.tensor(g.copy())
        tp = torch.nn.Parameter(torch.zeros(g.shape))
        tp.grad = torch.from_numpy(g.copy())
        ps.append(p)
        tps.append(tp)
    total = utils.clip_grad_norm_(ps, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert total.dtype == np.float32
    close(total.numpy(), t_total.numpy())
    for p, tp in zip(ps, tps):
        assert p.grad.dtype == np.float32
        close(p.grad.numpy(), tp.grad.numpy())


def test_clip_grad_norm_on_module_skips_missing_grads(close):
    lin = nn.Linear(3, 2)
    lin.weight.grad = numcnn.tensor(np.full((2, 3), 2.0, dtype=np.float32))
    total = utils.clip_grad_norm_(lin, 1.0)
    close(total.numpy(), np.sqrt(6 * 4.0))
    close(np.linalg.norm(lin.weight.grad.numpy()), 1.0, rtol=1e-5)


@pytest.mark.parametrize("biases", [True, False])
def test_l1_l2_penalty_gradients(close, biases):
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    lam = 0.01
    for penalty, grad_of in [(utils.l2_penalty, lambda w: lam * w), (utils.l1_penalty, lambda w: lam * np.sign(w))]:
        net.zero_grad()
        loss = penalty(net, lam, biases=biases)
        assert loss.dtype == np.float32
        loss.backward()
        ws = [p.numpy() for p in net.parameters() if biases or p.ndim > 1]
        want = 0.5 * lam * sum((w.astype(np.float64) ** 2).sum() for w in ws) if penalty is utils.l2_penalty \
            else lam * sum(np.abs(w.astype(np.float64)).sum() for w in ws)
        close(loss.numpy(), want, rtol=1e-6)
        for p in net.parameters():
            if biases or p.ndim > 1:
                close(p.grad.numpy(), grad_of(p.numpy()), rtol=1e-6)
            else:
                assert p.grad is None


def test_nested_model_forward_and_gradients_match_torch(torch_check):
    torch.manual_seed(0)
    nc_net, t_net = _build(nn), _build(torch.nn)
    nc_net.load_state_dict({k: v.detach().numpy().copy() for k, v in t_net.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 2)).astype(np.float32)
    torch_check(nc_net, t_net, x, modules=(nc_net, t_net))


def test_penalties_of_no_parameters_are_a_zero_tensor():
    for penalty in (utils.l1_penalty, utils.l2_penalty):
        out = penalty(nn.ReLU(), 0.1)
        assert isinstance(out, numcnn.Tensor) and out.dtype == np.float32 and out.item() == 0.0
