"""Bad input is refused at the boundary with ValueError/TypeError whose message names the layer or function,
what it expected and what it got (never a raw NumPy error from inside a kernel)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numcnn
import numcnn.nn as nn
import numcnn.nn.functional as F


def T(*shape, dtype=np.float32):
    return numcnn.tensor(np.zeros(shape, dtype=dtype))


def _raises(exc, pattern, fn):
    with pytest.raises(exc) as info:
        fn()
    assert re.search(pattern, str(info.value)), f"message {str(info.value)!r} does not match {pattern!r}"


def test_conv2d_wrong_channels_message_is_exact():
    _raises(
        ValueError,
        re.escape("Conv2d(3, 16, kernel_size=(3, 3)): expected input with 3 channels (weight (16, 3, 3, 3), "
                  "groups=1), got shape (8, 1, 28, 28)"),
        lambda: nn.Conv2d(3, 16, 3)(T(8, 1, 28, 28)),
    )


CASES = [
    # (exception, regex, callable)
    (ValueError, r"Conv2d\(3, 16.*4-D.*got shape \(3, 28, 28, 1, 1\)", lambda: nn.Conv2d(3, 16, 3)(T(3, 28, 28, 1, 1))),
    (ValueError, r"Conv2d\(1, 16.*4-D.*got shape \(8, 28\)", lambda: nn.Conv2d(1, 16, 3)(T(8, 28))),
    (ValueError, r"Conv1d\(3, 2.*3 channels.*\(1, 2, 4\)", lambda: nn.Conv1d(3, 2, 3)(T(1, 2, 4))),
    (
        ValueError,
        r"ConvTranspose2d\(3, 2.*3 channels.*\(1, 2, 4, 4\)",
        lambda: nn.ConvTranspose2d(3, 2, 3)(T(1, 2, 4, 4)),
    ),
    (
        ValueError,
        r"Conv2d\(1, 4, kernel_size=\(5, 5\)\): kernel size \(5, 5\).*larger than the padded input size \(3, 3\)",
        lambda: nn.Conv2d(1, 4, 5)(T(2, 1, 3, 3)),
    ),
    (
        ValueError,
        r"Conv1d\(3, 2, kernel_size=\(5,\)\): kernel size 5.*larger than the padded input length 4",
        lambda: nn.Conv1d(3, 2, 5)(T(1, 3, 4)),
    ),
    (ValueError, r"max_pool2d:.*larger than the padded input.*\(8, 3, 1, 1\)", lambda: nn.MaxPool2d(2)(T(8, 3, 1, 1))),
    (ValueError, r"avg_pool2d:.*larger than the padded input", lambda: F.avg_pool2d(T(1, 1, 2, 2), 3, padding=0)),
    (ValueError, r"Conv2d: stride must be >= 1, got 0", lambda: nn.Conv2d(1, 4, 3, stride=0)),
    (ValueError, r"Conv2d: stride must be >= 1, got -1", lambda: nn.Conv2d(1, 4, 3, stride=-1)),
    (
        ValueError,
        r"conv2d: stride must be >= 1, got \(1, 0\)",
        lambda: F.conv2d(T(1, 1, 4, 4), T(1, 1, 3, 3), stride=(1, 0)),
    ),
    (ValueError, r"conv2d: dilation must be >= 1", lambda: F.conv2d(T(1, 1, 4, 4), T(1, 1, 3, 3), dilation=0)),
    (ValueError, r"conv2d: padding must be >= 0, got -1", lambda: F.conv2d(T(1, 1, 4, 4), T(1, 1, 3, 3), padding=-1)),
    (
        ValueError,
        r"conv2d: padding must be .*'same'.*got 'full'",
        lambda: F.conv2d(T(1, 1, 4, 4), T(1, 1, 3, 3), padding="full"),
    ),
    (
        ValueError,
        r"conv2d: padding='same' is not supported for strided",
        lambda: F.conv2d(T(1, 1, 4, 4), T(1, 1, 3, 3), stride=2, padding="same"),
    ),
    (ValueError, r"Conv2d: padding='same' is not supported for strided", lambda: nn.Conv2d(1, 1, 3, 2, "same")),
    (
        ValueError,
        r"ConvTranspose2d\(3, 2, kernel_size=\(3, 3\)\): output_padding must be smaller than either stride or dilation",
        lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, output_padding=2)(T(1, 3, 4, 4)),
    ),
    (ValueError, r"MaxPool2d: stride must be >= 1, got 0", lambda: nn.MaxPool2d(2, stride=0)),
    (ValueError, r"MaxPool2d: kernel_size must be >= 1, got 0", lambda: nn.MaxPool2d(0)),
    (
        ValueError,
        r"max_pool2d: padding should be at most half of kernel size",
        lambda: F.max_pool2d(T(1, 1, 5, 5), 3, padding=2),
    ),
    (ValueError, r"Conv2d: in_channels \(3\) must be divisible by groups \(2\)", lambda: nn.Conv2d(3, 4, 3, groups=2)),
    (ValueError, r"Linear: in_features must be a positive int, got 0", lambda: nn.Linear(0, 3)),
    (
        ValueError,
        r"Linear\(3, 4\): expected input with last dim 3, got shape \(8, 5\)",
        lambda: nn.Linear(3, 4)(T(8, 5)),
    ),
    (ValueError, r"linear: expected input with last dim 3.*got shape \(2, 5\)", lambda: F.linear(T(2, 5), T(4, 3))),
    (
        ValueError,
        r"BatchNorm2d\(3\): expected input with 3 channels, got shape \(8, 2, 2, 2\)",
        lambda: nn.BatchNorm2d(3)(T(8, 2, 2, 2)),
    ),
    (ValueError, r"BatchNorm2d\(3\): expected 4-D input, got shape \(8, 3\)", lambda: nn.BatchNorm2d(3)(T(8, 3))),
    (
        ValueError,
        r"BatchNorm1d\(3\): expected 2-D or 3-D input, got shape \(8, 3, 2, 2\)",
        lambda: nn.BatchNorm1d(3)(T(8, 3, 2, 2)),
    ),
    (
        ValueError,
        r"batch_norm: expected more than 1 value per channel when training, got input shape \(1, 3\)",
        lambda: nn.BatchNorm1d(3)(T(1, 3)),
    ),
    (
        ValueError,
        r"layer_norm: expected input with trailing shape \(3,\), got shape \(8, 4\)",
        lambda: nn.LayerNorm(3)(T(8, 4)),
    ),
    (ValueError, r"max_pool2d: expected input to be 3-D or 4-D, got shape \(8, 3\)", lambda: nn.MaxPool2d(2)(T(8, 3))),
    (ValueError, r"adaptive_avg_pool2d: output_size must be >= 1", lambda: nn.AdaptiveAvgPool2d(0)(T(1, 3, 4, 5))),
    (IndexError, r"softmax: dim 2 is out of range for a tensor of shape \(2, 3\)", lambda: F.softmax(T(2, 3), 2)),
    (ValueError, r"Dropout: probability has to be between 0 and 1, but got -0.1", lambda: nn.Dropout(-0.1)),
    # wrong dtypes
    (
        TypeError,
        r"conv2d: expected input to be a floating point tensor, got dtype numcnn.int64 \(call \.float\(\)",
        lambda: nn.Conv2d(1, 4, 3)(T(2, 1, 5, 5, dtype=np.int64)),
    ),
    (
        TypeError,
        r"linear: expected input to be a floating point tensor, got dtype numcnn.int64",
        lambda: nn.Linear(3, 4)(T(2, 3, dtype=np.int64)),
    ),
    (
        TypeError,
        r"relu: expected input to be a floating point tensor, got dtype numcnn.uint8",
        lambda: nn.ReLU()(T(2, 3, dtype=np.uint8)),
    ),
    (
        TypeError,
        r"max_pool2d: expected input to be a floating point tensor, got dtype numcnn.int64",
        lambda: nn.MaxPool2d(2)(T(1, 1, 4, 4, dtype=np.int64)),
    ),
    (TypeError, r"relu: expected input to be a numcnn Tensor, got ndarray", lambda: F.relu(np.zeros(3))),
    (
        TypeError,
        r"conv2d: input dtype numcnn.float64 does not match weight dtype numcnn.float32.*call \.float\(\) on the input",
        lambda: nn.Conv2d(1, 4, 3)(T(2, 1, 5, 5, dtype=np.float64)),
    ),
    (
        TypeError,
        r"linear: input dtype numcnn.float64 does not match weight dtype numcnn.float32.*\.float\(\)",
        lambda: nn.Linear(3, 4)(T(2, 3, dtype=np.float64)),
    ),
    (
        TypeError,
        r"batch_norm: input dtype numcnn.float64 does not match weight dtype numcnn.float32.*\.float\(\)",
        lambda: nn.BatchNorm2d(3)(T(2, 3, 2, 2, dtype=np.float64)),
    ),
    (
        TypeError,
        r"layer_norm: input dtype numcnn.float64 does not match weight dtype numcnn.float32.*\.float\(\)",
        lambda: nn.LayerNorm(3)(T(2, 3, dtype=np.float64)),
    ),
    (
        TypeError,
        r"linear: input dtype numcnn.float32 does not match weight dtype numcnn.float64.*\.double\(\) on the input",
        lambda: nn.Linear(3, 4).double()(T(2, 3)),
    ),
    # losses
    (
        ValueError,
        r"cross_entropy: expected target of shape \(8,\) for input of shape \(8, 3\), got \(7,\)",
        lambda: nn.CrossEntropyLoss()(T(8, 3), T(7, dtype=np.int64)),
    ),
    (
        ValueError,
        r"cross_entropy: target 3 is out of bounds for 3 classes",
        lambda: nn.CrossEntropyLoss()(T(8, 3), numcnn.tensor(np.full(8, 3))),
    ),
    (
        ValueError,
        r"cross_entropy: target -1 is out of bounds for 3 classes",
        lambda: nn.CrossEntropyLoss()(T(8, 3), numcnn.tensor(np.full(8, -1))),
    ),
    (
        ValueError,
        r"cross_entropy: probability targets must have the input's shape \(8, 3\), got \(8, 2\)",
        lambda: nn.CrossEntropyLoss()(T(8, 3), T(8, 2)),
    ),
    (
        TypeError,
        r"cross_entropy: expected target to be a numcnn Tensor, got ndarray",
        lambda: F.cross_entropy(T(8, 3), np.zeros(8, dtype=np.int64)),
    ),
    (
        ValueError,
        r"cross_entropy: expected weight of shape \(3,\), got \(4,\)",
        lambda: F.cross_entropy(T(8, 3), T(8, dtype=np.int64), T(4)),
    ),
    (
        ValueError,
        r"cross_entropy: reduction must be one of.*got 'avg'",
        lambda: F.cross_entropy(T(2, 3), T(2, dtype=np.int64), reduction="avg"),
    ),
    (ValueError, r"CrossEntropyLoss: reduction must be one of", lambda: nn.CrossEntropyLoss(reduction="avg")),
    (
        ValueError,
        r"nll_loss: target 5 is out of bounds for 3 classes",
        lambda: nn.NLLLoss()(T(8, 3), numcnn.tensor(np.full(8, 5))),
    ),
    (
        TypeError,
        r"nll_loss: expected target to be an int64 Tensor of class indices, got numcnn.float32",
        lambda: nn.NLLLoss()(T(8, 3), T(8)),
    ),
    (
        ValueError,
        r"mse_loss: expected target of the input's shape \(8, 3\), got \(8, 1\)",
        lambda: nn.MSELoss()(T(8, 3), T(8, 1)),
    ),
    (
        ValueError,
        r"l1_loss: expected target of the input's shape \(8, 3\), got \(3, 8\)",
        lambda: nn.L1Loss()(T(8, 3), T(3, 8)),
    ),
    (
        TypeError,
        r"mse_loss: input dtype numcnn.float32 does not match target dtype numcnn.float64.*\.float\(\) on the target",
        lambda: nn.MSELoss()(T(8, 3), T(8, 3, dtype=np.float64)),
    ),
    (
        ValueError,
        r"binary_cross_entropy_with_logits: expected target of the input's shape \(8, 3\), got \(8,\)",
        lambda: nn.BCEWithLogitsLoss()(T(8, 3), T(8)),
    ),
    (
        ValueError,
        r"binary_cross_entropy: expected target of the input's shape \(8, 3\), got \(8,\)",
        lambda: nn.BCELoss()(T(8, 3), T(8)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[1][:40])
def test_bad_input_is_refused_with_a_clear_message(case):
    exc, pattern, fn = case
    _raises(exc, pattern, fn)


def test_layers_accept_unbatched_input_like_torch():
    """The rank check does not refuse torch's unbatched forms: (C, H, W) for Conv2d/pools, (C, L) for Conv1d."""
    conv = nn.Conv2d(2, 3, 3)
    x = numcnn.tensor(np.random.default_rng(0).standard_normal((2, 5, 5)).astype(np.float32))
    np.testing.assert_allclose(conv(x).numpy(), conv(x.unsqueeze(0)).numpy()[0], rtol=1e-6)
    c1 = nn.Conv1d(2, 3, 3)
    x1 = numcnn.tensor(np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32))
    np.testing.assert_allclose(c1(x1).numpy(), c1(x1.unsqueeze(0)).numpy()[0], rtol=1e-6)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), nn.MaxPool2d(2)(x.unsqueeze(0)).numpy()[0])
