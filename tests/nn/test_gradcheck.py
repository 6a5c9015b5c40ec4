"""Backward of the functional ops against central finite differences in float64 (an oracle independent of
torch), for every float input: conv2d (both algorithms), conv1d, conv_transpose2d, the pools, batch_norm in
training, layer_norm, cross_entropy with label smoothing, and a layer converted with Module.double()."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.nn as nn
import numcnn.nn.functional as F


def _r(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("algorithm", ["im2col", "naive"])
@pytest.mark.parametrize("conf", [dict(stride=1, padding=1), dict(stride=(2, 1), padding=(0, 1), dilation=(1, 2)),
                                  dict(padding="same", groups=2)])
def test_conv2d(gradcheck, algorithm, conf):
    gradcheck(lambda x, w, b: F.conv2d(x, w, b, algorithm=algorithm, **conf), _r(0, 2, 2, 4, 5), _r(1, 4, 2 // conf.get(
        "groups", 1), 3, 2), _r(2, 4))


def test_conv1d(gradcheck):
    gradcheck(lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2), _r(0, 2, 3, 7), _r(1, 2, 3, 2),
              _r(2, 2))


@pytest.mark.parametrize("algorithm", ["im2col", "naive"])
def test_conv_transpose2d(gradcheck, algorithm):
    gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2,
                                                 algorithm=algorithm),
              _r(0, 1, 4, 3, 2), _r(1, 4, 1, 3, 3), _r(2, 2))


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_max_pool2d(gradcheck, ceil_mode):
    gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=ceil_mode), _r(0, 2, 2, 6, 5))


@pytest.mark.parametrize("count_include_pad", [False, True])
def test_avg_pool2d(gradcheck, count_include_pad):
    gradcheck(lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=count_include_pad),
              _r(0, 2, 2, 6, 5))


def test_adaptive_avg_pool2d(gradcheck):
    gradcheck(lambda x: F.adaptive_avg_pool2d(x, (3, 2)), _r(0, 2, 2, 5, 7))


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2), (3, 3, 2, 2)])
def test_batch_norm_train(gradcheck, shape):
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), _r(0, *shape) * 2 + 1,
              _r(1, 3), _r(2, 3))


def test_batch_norm_eval(gradcheck):
    rm, rv = numcnn.tensor(_r(3, 3)), numcnn.tensor(np.abs(_r(4, 3)) + 0.5)
    gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), _r(0, 4, 3, 2), _r(1, 3), _r(2, 3))


def test_layer_norm(gradcheck):
    gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), _r(0, 2, 3, 4) * 2 + 1, _r(1, 3, 4), _r(2, 3, 4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_smoothing(gradcheck, reduction):
    target = np.array([[0, 2], [1, -100], [3, 3]])
    w = numcnn.tensor(np.abs(_r(5, 4)) + 0.5)
    gradcheck(lambda x: F.cross_entropy(x, numcnn.tensor(target), w, reduction=reduction, label_smoothing=0.2),
              _r(0, 3, 4, 2) * 3)


def test_cross_entropy_probability_targets(gradcheck):
    p = np.abs(_r(1, 3, 4))
    p /= p.sum(axis=1, keepdims=True)
    gradcheck(lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), _r(0, 3, 4), p)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_elu_softmax(gradcheck, approximate):
    gradcheck(lambda x: F.gelu(x, approximate) + F.elu(x, 0.7) + F.log_softmax(x, 0) * F.softmax(x, 1),
              _r(0, 3, 4) * 2)


def test_bce_with_logits(gradcheck):
    pw = numcnn.tensor(np.abs(_r(3, 4)) + 0.5)
    gradcheck(lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw), _r(0, 3, 4) * 3,
              np.random.default_rng(1).uniform(0, 1, (3, 4)))


def test_double_layer(gradcheck, numgrad, close):
    """A layer converted with .double() computes in float64: input and parameter gradients."""
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    assert conv.weight.dtype == np.float64 and conv.bias.dtype == np.float64
    x = _r(0, 1, 2, 4, 4)
    gradcheck(conv, x)
    u = _r(1, 1, 3, 4, 4)
    conv.zero_grad()
    conv(numcnn.tensor(x)).backward(u)

    def loss():
        with numcnn.no_grad():
            return float((conv(numcnn.tensor(x)).numpy() * u).sum())

    for p in conv.parameters():
        assert p.grad.dtype == np.float64
        close(p.grad.numpy(), numgrad(loss, p.data), rtol=1e-5, atol=1e-6)
