"""BatchNorm folding (numcnn.nn.utils.fuse*): fused weights against torch.nn.utils.fusion, fused models against
the unfused ones in eval mode, a hand-computed fold, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import models, nn
from numcnn.nn.utils import fuse, fuse_conv_bn_eval, fuse_linear_bn_eval

torch = pytest.importorskip("torch")
tfusion = pytest.importorskip("torch.nn.utils.fusion")


def _randomize_bn(bn, rng) -> None:
    """Running stats far from (0, 1) and random gamma/beta, so that every term of the fold matters."""
    c, dt = bn.num_features, bn.running_mean.dtype
    bn.running_mean.data[...] = rng.normal(0.0, 1.0, c).astype(dt)
    bn.running_var.data[...] = rng.uniform(0.3, 3.0, c).astype(dt)
    if bn.affine:
        bn.weight.data[...] = rng.normal(1.0, 0.5, c).astype(dt)
        bn.bias.data[...] = rng.normal(0.0, 0.5, c).astype(dt)


def _randomize_all_bn(model, rng):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomize_bn(m, rng)
    return model


def _t(a) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


def _torch_bn(bn, cls):
    t = cls(bn.num_features, eps=bn.eps, affine=bn.affine, dtype=_t(bn.running_mean.data).dtype)
    with torch.no_grad():
        t.running_mean.copy_(_t(bn.running_mean.data))
        t.running_var.copy_(_t(bn.running_var.data))
        if bn.affine:
            t.weight.copy_(_t(bn.weight.data))
            t.bias.copy_(_t(bn.bias.data))
    return t.eval()


def _torch_like(layer, t_layer):
    with torch.no_grad():
        t_layer.weight.copy_(_t(layer.weight.data))
        if layer.bias is not None:
            t_layer.bias.copy_(_t(layer.bias.data))
    return t_layer.eval()


def _run(model, x: np.ndarray) -> np.ndarray:
    with numcnn.no_grad():
        return model(numcnn.tensor(x)).numpy()


def _state(model) -> dict:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def _assert_outputs_match(got, want, rtol=1e-5, atol=1e-6):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * float(np.abs(want).max()))


# ---------------------------------------------------------------- single pairs against torch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_conv_bn_matches_torch(dtype, bias, groups, affine, close):
    rng = np.random.default_rng([groups, bias, affine])
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=groups, bias=bias, dtype=dtype).eval()
    bn = nn.BatchNorm2d(6, eps=1e-3, affine=affine, dtype=dtype).eval()
    _randomize_bn(bn, rng)
    t_conv = _torch_like(conv, torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=groups, bias=bias,
                                                 dtype=_t(conv.weight.data).dtype))
    t_bn = _torch_bn(bn, torch.nn.BatchNorm2d)
    want = tfusion.fuse_conv_bn_eval(t_conv, t_bn)

    fused = fuse_conv_bn_eval(conv, bn)
    assert type(fused) is nn.Conv2d and fused is not conv
    assert (fused.stride, fused.padding, fused.groups) == ((2, 2), (1, 1), groups)
    assert fused.weight.dtype == dtype and fused.bias.dtype == dtype
    assert fused.weight.requires_grad and fused.bias.requires_grad
    close(fused.weight.numpy(), want.weight.detach().numpy(), rtol=1e-6, atol=1e-7, what="fused weight")
    close(fused.bias.numpy(), want.bias.detach().numpy(), rtol=1e-6, atol=1e-7, what="fused bias")
    assert (conv.bias is None) == (not bias)  # the input conv is not given a bias

    x = rng.standard_normal((2, 4, 7, 7)).astype(dtype)
    with torch.no_grad():
        ref = t_bn(t_conv(_t(x))).numpy()
    _assert_outputs_match(_run(fused, x), ref, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_linear_bn_matches_torch(bias, affine, close):
    rng = np.random.default_rng([7, bias, affine])
    lin = nn.Linear(5, 4, bias=bias).eval()
    bn = nn.BatchNorm1d(4, affine=affine).eval()
    _randomize_bn(bn, rng)
    t_lin = _torch_like(lin, torch.nn.Linear(5, 4, bias=bias))
    t_bn = _torch_bn(bn, torch.nn.BatchNorm1d)
    if affine:
        want = tfusion.fuse_linear_bn_eval(t_lin, t_bn)
        want_w, want_b = want.weight, want.bias
    else:  # torch's fuse_linear_bn_weights needs gamma and beta: pass affine=False's implicit 1 and 0
        rm = t_bn.running_mean
        want_w, want_b = tfusion.fuse_linear_bn_weights(t_lin.weight, t_lin.bias, rm, t_bn.running_var, t_bn.eps,
                                                        torch.ones_like(rm), torch.zeros_like(rm))
    fused = fuse_linear_bn_eval(lin, bn)
    assert type(fused) is nn.Linear and fused.bias is not None and fused.weight.dtype == np.float32
    close(fused.weight.numpy(), want_w.detach().numpy(), rtol=1e-6, atol=1e-7, what="fused weight")
    close(fused.bias.numpy(), want_b.detach().numpy(), rtol=1e-6, atol=1e-7, what="fused bias")

    x = rng.standard_normal((3, 5)).astype(np.float32)
    with torch.no_grad():
        ref = t_bn(t_lin(_t(x))).numpy()
    _assert_outputs_match(_run(fused, x), ref)


def test_linear_bn_one_feature_broadcasts_like_torch(close):
    # BatchNorm1d(1) on a (N, 1, L) output: one scale for every output feature (torch allows this case too).
    rng = np.random.default_rng(3)
    lin, bn = nn.Linear(5, 4).eval(), nn.BatchNorm1d(1).eval()
    _randomize_bn(bn, rng)
    t_lin, t_bn = _torch_like(lin, torch.nn.Linear(5, 4)), _torch_bn(bn, torch.nn.BatchNorm1d)
    want = tfusion.fuse_linear_bn_eval(t_lin, t_bn)
    fused = fuse_linear_bn_eval(lin, bn)
    assert fused.bias.shape == (4,)
    close(fused.weight.numpy(), want.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    close(fused.bias.numpy(), want.bias.detach().numpy(), rtol=1e-6, atol=1e-7)
    x = rng.standard_normal((3, 1, 5)).astype(np.float32)
    with torch.no_grad():
        ref = t_bn(t_lin(_t(x))).numpy()
    _assert_outputs_match(_run(fused, x), ref)


def test_conv_bn_hand_computed():
    # W=2, b=1, mean=3, var=3, eps=1 -> 1/sqrt(4) = 0.5; gamma=4, beta=1: W' = 2*4*0.5 = 4, b' = (1-3)*0.5*4+1 = -3.
    conv = nn.Conv2d(1, 1, 1).eval()
    conv.weight.data[...] = 2.0
    conv.bias.data[...] = 1.0
    bn = nn.BatchNorm2d(1, eps=1.0).eval()
    bn.running_mean.data[...] = 3.0
    bn.running_var.data[...] = 3.0
    bn.weight.data[...] = 4.0
    bn.bias.data[...] = 1.0
    fused = fuse_conv_bn_eval(conv, bn)
    assert fused.weight.numpy().item() == 4.0 and fused.bias.numpy().item() == -3.0
    assert conv.weight.numpy().item() == 2.0 and conv.bias.numpy().item() == 1.0  # inputs untouched


# ---------------------------------------------------------------- whole models


@pytest.mark.parametrize("name, options", [("convnet", {}), ("lenet5", {"batchnorm": True})])
def test_fused_zoo_model_matches_unfused(name, options):
    rng = np.random.default_rng(11)
    model = _randomize_all_bn(models.get(name, **options), rng)
    before = _state(model)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)

    fused = fuse(model)
    assert fused is not model and not fused.training
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in fused.modules())
    keys = list(fused.state_dict())
    assert not any("running_mean" in k or "num_batches_tracked" in k for k in keys)
    assert set(keys) == {k for k in before if not k.startswith(_bn_prefixes(model))}

    # The original keeps its BatchNorms, values and training mode.
    assert model.training
    after = _state(model)
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)

    want = _run(model.eval(), x)
    got = _run(fused, x)
    _assert_outputs_match(got, want)
    # The fold must matter: with these stats the BN is far from the identity.
    assert not np.allclose(_run(_without_bn(model), x), want, rtol=1e-2)


def _bn_prefixes(model) -> tuple[str, ...]:
    return tuple(f"{n}." for n, m in model.named_modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)))


def _without_bn(model):
    import copy

    m = copy.deepcopy(model)
    for mod in list(m.modules()):
        for k, child in mod._modules.items():
            if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod._modules[k] = nn.Identity()
    return m


def test_fuse_inplace_and_twice():
    rng = np.random.default_rng(5)
    model = _randomize_all_bn(models.get("convnet"), rng)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    want = _run(fuse(model), x)
    out = fuse(model, inplace=True)
    assert out is model and not model.training
    assert isinstance(model.layer1[1], nn.Identity) and isinstance(model.layer2[1], nn.Identity)
    again = fuse(model)  # nothing left to fold: same numbers
    np.testing.assert_array_equal(_run(model, x), want)
    np.testing.assert_array_equal(_run(again, x), want)


def test_fused_state_dict_loads_into_fused_model():
    rng = np.random.default_rng(6)
    src = fuse(_randomize_all_bn(models.get("lenet5", batchnorm=True), rng))
    dst = fuse(models.get("lenet5", batchnorm=True))
    dst.load_state_dict(src.state_dict())
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(_run(dst, x), _run(src, x))


def test_float64_stays_float64():
    rng = np.random.default_rng(8)
    model = _randomize_all_bn(models.get("convnet").double(), rng)
    fused = fuse(model)
    assert all(p.dtype == np.float64 for p in fused.parameters())
    x = rng.standard_normal((2, 1, 28, 28))
    got, want = _run(fused, x), _run(model.eval(), x)
    assert got.dtype == np.float64
    _assert_outputs_match(got, want, rtol=1e-10, atol=1e-12)


class _Block(nn.Module):
    """A non-Sequential module that declares its pairs; ``extra`` is a BN after a ReLU (not foldable)."""

    _fusable = (("conv1", "bn1"), ("fc", "bn_fc"))

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.extra = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 4 * 4, 5)
        self.bn_fc = nn.BatchNorm1d(5)

    def forward(self, x):
        out = self.extra(self.relu(self.bn1(self.conv1(x))))
        return self.bn_fc(self.fc(out.flatten(1)))


def test_named_pairs_and_nested_sequentials():
    rng = np.random.default_rng(9)
    model = nn.Sequential(
        _Block(),
        nn.Sequential(nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4)), nn.ReLU()),
        nn.Unflatten(1, (4, 1)),
        nn.Conv1d(4, 3, 1), nn.BatchNorm1d(3), nn.BatchNorm1d(3),  # only the first BN follows the conv
    )
    _randomize_all_bn(model, rng)
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    fused = fuse(model)
    blk = fused[0]
    assert isinstance(blk.bn1, nn.Identity) and isinstance(blk.bn_fc, nn.Identity)
    assert isinstance(blk.extra, nn.BatchNorm2d) and blk.conv1.bias is not None
    assert isinstance(fused[1][0][1], nn.Identity)
    assert isinstance(fused[4], nn.Identity) and isinstance(fused[5], nn.BatchNorm1d)
    _assert_outputs_match(_run(fused, x), _run(model.eval(), x))


@pytest.mark.parametrize("name, opts", [
    ("resnet", {"blocks_per_stage": 1}),
    ("resnet", {"blocks_per_stage": 1, "bottleneck": True}),
    ("inception", {}),
])
def test_zoo_models_fold_their_declared_pairs(name, opts):
    # ResNet's blocks and stem and Inception's BasicConv2d name their (conv, bn) pairs in _fusable.
    rng = np.random.default_rng(10)
    model = _randomize_all_bn(models.get(name, **opts), rng)
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    fused = fuse(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    _assert_outputs_match(_run(fused, x), _run(model.eval(), x))


# ---------------------------------------------------------------- refusals


def test_refuses_train_mode():
    conv, bn = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"Conv2d\(2, 3.*training mode"):
        fuse_conv_bn_eval(conv, bn.eval())
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) is in training mode"):
        fuse_conv_bn_eval(conv.eval(), bn.train())
    with pytest.raises(ValueError, match=r"Linear\(2, 3\) is in training mode"):
        fuse_linear_bn_eval(nn.Linear(2, 3), nn.BatchNorm1d(3).eval())


def test_refuses_mismatched_channels():
    with pytest.raises(ValueError, match=r"3 output channels but BatchNorm2d\(4\)"):
        fuse_conv_bn_eval(nn.Conv2d(2, 3, 3).eval(), nn.BatchNorm2d(4).eval())
    with pytest.raises(ValueError, match=r"3 output features but BatchNorm1d\(4\)"):
        fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(4).eval())


def test_refuses_no_running_stats():
    bn = nn.BatchNorm2d(3, track_running_stats=False).eval()
    with pytest.raises(ValueError, match="track_running_stats=False"):
        fuse_conv_bn_eval(nn.Conv2d(2, 3, 3).eval(), bn)
    with pytest.raises(ValueError, match="track_running_stats=False"):
        fuse(nn.Sequential(nn.Conv2d(2, 3, 3), bn))


def test_refuses_wrong_types():
    with pytest.raises(TypeError, match="ConvTranspose2d"):
        fuse_conv_bn_eval(nn.ConvTranspose2d(2, 3, 3).eval(), nn.BatchNorm2d(3).eval())
    with pytest.raises(TypeError, match="expected a BatchNorm1d, got BatchNorm2d"):
        fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm2d(3).eval())
    with pytest.raises(TypeError, match="expected an nn.Module"):
        fuse("model")

    class Bad(nn.Module):
        _fusable = (("conv", "norm"),)

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)

    with pytest.raises(ValueError, match="Bad has no child module 'norm'"):
        fuse(Bad())
