"""The inference fast paths (issue 12): Function.apply with grad mode off, conv2d's and the poolings' cached argument
checks, the one-pass batch-norm eval kernel, and nn.Sequential running an eval BatchNorm2d + ReLU as one pass under
no_grad. Each must give the bits, errors and hook calls of the general path."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
from numcnn import models, nn
from numcnn.autograd import function as _function
from numcnn.kernels.norm import batch as KB
from numcnn.kernels.runtime import runtime
from numcnn.nn import functional as F


def _convnet(seed: int = 0):
    numcnn.manual_seed(seed)
    m = models.get("convnet", in_channels=1, num_classes=10)
    rng = np.random.default_rng(seed)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.array[...] = rng.normal(0, 0.2, c).astype(np.float32)
            mod.running_var.array[...] = rng.uniform(0.5, 2.0, c).astype(np.float32)
            mod.weight.array[...] = rng.normal(1, 0.3, c).astype(np.float32)
            mod.bias.array[...] = rng.normal(0, 0.3, c).astype(np.float32)
    return m.eval()


@pytest.mark.parametrize("n", [1, 3, 64])
def test_eval_forward_no_grad_matches_grad_mode_bits(n):
    m = _convnet()
    x = numcnn.tensor(np.random.default_rng(1).standard_normal((n, 1, 28, 28)).astype(np.float32))
    with_grad = m(x).numpy()  # grad mode on: the general path, every module called, the graph recorded
    with numcnn.no_grad():
        fast = m(x).numpy()
    assert fast.tobytes() == with_grad.tobytes()


def test_sequential_fusion_same_bits_as_separate_layers():
    rng = np.random.default_rng(2)
    seq = _convnet().layer1
    x = numcnn.tensor(rng.standard_normal((5, 1, 28, 28)).astype(np.float32))
    x.array.reshape(-1)[:3] = [np.nan, -0.0, np.inf]
    with numcnn.no_grad():
        fused = seq(x).numpy()
        h = x
        for mod in seq:  # each module on its own: no fusion
            h = mod(h)
    assert fused.tobytes() == h.numpy().tobytes()
    assert fused.strides == h.numpy().strides


def test_sequential_fusion_keeps_hooks_and_training():
    seq = _convnet().layer1
    x = numcnn.tensor(np.random.default_rng(3).standard_normal((2, 1, 28, 28)).astype(np.float32))
    seen = []
    handle = seq[1].register_forward_hook(lambda mod, inp, out: seen.append(out.numpy().copy()))
    with numcnn.no_grad():
        y_hooked = seq(x).numpy()
    assert len(seen) == 1 and seen[0].min() < 0  # the batch norm's own output, before the ReLU
    handle.remove()
    relu_seen = []
    handle = seq[2].register_forward_pre_hook(lambda mod, inp: relu_seen.append(1))
    with numcnn.no_grad():
        assert seq(x).numpy().tobytes() == y_hooked.tobytes()
    assert relu_seen == [1]
    handle.remove()
    seq.train()  # training mode is never fused: the running statistics are updated as before
    before = seq[1].num_batches_tracked.array.copy()
    with numcnn.no_grad():
        seq(x)
    assert seq[1].num_batches_tracked.array == before + 1


def test_sequential_fusion_same_errors():
    seq = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()).eval()
    bad = numcnn.tensor(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError) as slow:
        seq(bad)
    with numcnn.no_grad(), pytest.raises(ValueError) as fast:
        seq(bad)
    assert str(fast.value) == str(slow.value)
    seq[0].running_mean = None
    x = numcnn.tensor(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError) as slow:
        seq(x)
    with numcnn.no_grad(), pytest.raises(ValueError) as fast:
        seq(x)
    assert str(fast.value) == str(slow.value)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("shape", [(1, 16, 28, 28), (70, 16, 28, 28), (3, 5), (4, 3, 7)])
def test_bn_eval_kernel_one_pass_bits(backend, shape):
    rng = np.random.default_rng(4)
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.1, 3, c).astype(np.float32)
    g, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    scale = np.float32(1) / np.sqrt(rv + np.float32(1e-5)) * g
    want = x * scale.reshape(bshape)
    want += (-rm * scale + b).reshape(bshape)
    with runtime.scoped(backend=backend):
        got = KB.batch_norm_eval_forward(x, rm, rv, g, b, 1e-5, axes)
        got_relu = KB.batch_norm_eval_forward(x, rm, rv, g, b, 1e-5, axes, relu=True)
    assert got.tobytes() == want.tobytes()
    assert got_relu.tobytes() == np.maximum(want, np.float32(0)).tobytes()


def test_apply_without_grad_mode_calls_forward_hook_and_records_nothing():
    calls = []
    previous = _function._forward_hook
    _function._forward_hook = lambda cls, args, kwargs, ctx, result: calls.append((cls.__name__, ctx.needs_input_grad))
    try:
        w = nn.Parameter(np.ones((3, 2), np.float32))
        with numcnn.no_grad():
            y = F.linear(numcnn.tensor(np.ones((1, 2), np.float32)), w)
    finally:
        _function._forward_hook = previous
    assert calls == [("_Linear", (False, False, False))]
    assert y.grad_fn is None and not y.requires_grad


def test_cached_argument_checks_still_refuse_bools_and_bad_values():
    x = numcnn.tensor(np.zeros((1, 2, 8, 8), np.float32))
    w = numcnn.tensor(np.zeros((3, 2, 3, 3), np.float32))
    F.conv2d(x, w, stride=1, padding=1)  # cached now
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x, w, stride=True, padding=1)
    with pytest.raises(TypeError, match="padding"):
        F.conv2d(x, w, stride=1, padding=(1, True))
    assert F.conv2d(x, w, stride=np.int64(1), padding=[1, 1]).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="'same' is not supported"):
        F.conv2d(x, w, stride=2, padding="same")
    F.max_pool2d(x, 2)  # cached now
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, True)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(numcnn.tensor(np.zeros((1, 2, 1, 1), np.float32)), 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.max_pool2d(numcnn.tensor(np.zeros((1, 2, 1, 1), np.float32)), 2)
