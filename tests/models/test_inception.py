"""The small Inception network against hand counts and a torchvision-GoogLeNet-style PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models

torch = pytest.importorskip("torch")
tnn = torch.nn


# ---------------------------------------------------------------- twin: torchvision's googlenet.py building blocks
class TBasicConv2d(tnn.Module):
    def __init__(self, cin, cout, **kwargs):
        super().__init__()
        self.conv = tnn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = tnn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.nn.functional.relu(self.bn(self.conv(x)), inplace=True)


class TInception(tnn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = TBasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = tnn.Sequential(TBasicConv2d(cin, ch3x3red, kernel_size=1),
                                      TBasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(TBasicConv2d(cin, ch5x5red, kernel_size=1),
                                      TBasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2))
        self.branch4 = tnn.Sequential(tnn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                      TBasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class TInceptionNet(tnn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.conv1 = TBasicConv2d(c, 32, kernel_size=3, padding=1)
        self.maxpool1 = tnn.MaxPool2d(2)
        self.inception1 = TInception(32, 16, 16, 32, 8, 8, 8)
        self.maxpool2 = tnn.MaxPool2d(2)
        self.inception2 = TInception(64, 32, 32, 64, 8, 16, 16)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(128, k)

    def forward(self, x):
        x = self.maxpool2(self.inception1(self.maxpool1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.inception2(x)), 1))


def convbn(cin, cout, ksize):
    return ksize * ksize * cin * cout + 2 * cout  # bias-free conv + BN gamma, beta


def params(c, k):
    stem = convbn(c, 32, 3)
    # branches: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | pool -> 1x1
    inc1 = convbn(32, 16, 1) + convbn(32, 16, 1) + convbn(16, 32, 3) + convbn(32, 8, 1) + convbn(8, 8, 5) \
        + convbn(32, 8, 1)
    inc2 = convbn(64, 32, 1) + convbn(64, 32, 1) + convbn(32, 64, 3) + convbn(64, 8, 1) + convbn(8, 16, 5) \
        + convbn(64, 16, 1)
    return stem + inc1 + inc2 + 128 * k + k


def macs(c, k):
    # per output pixel: (kernel area x in x out); stem at 28x28, inception1 at 14x14, inception2 at 7x7
    stem = 9 * c * 32 * 784
    inc1 = (32 * 16 + 32 * 16 + 9 * 16 * 32 + 32 * 8 + 25 * 8 * 8 + 32 * 8) * 196
    inc2 = (64 * 32 + 64 * 32 + 9 * 32 * 64 + 64 * 8 + 25 * 8 * 16 + 64 * 16) * 49
    return stem + inc1 + inc2 + 128 * k


def test_counts_by_hand():
    # stem 288 + 64; inception1 544 + 544 + 4672 + 272 + 1616 + 272; inception2 2112 + 2112 + 18560 + 528 + 3232
    # + 1056; fc 1290
    assert params(1, 10) == 352 + 7920 + 27600 + 1290 == 37162
    assert macs(1, 10) == 225792 + 1517824 + 1335936 + 1280 == 3080832


@pytest.mark.parametrize("c,k", [(1, 10), (3, 5)])
def test_counts_match_summary_and_twin(c, k, zoo):
    model = numcnn.models.get("inception", in_channels=c, num_classes=k)
    twin = TInceptionNet(c, k)
    s = numcnn.utils.summary(model, (c, 28, 28), print_fn=None)
    assert s.total_params == params(c, k) == sum(p.numel() for p in twin.parameters())
    assert s.total_macs == macs(c, k) == zoo.torch_macs(twin, c)
    assert s.layers[-1].output_shape == (1, k)
    shapes = {layer.name: layer.output_shape for layer in s.layers}
    assert shapes["inception1.branch3.1.conv"] == (1, 8, 14, 14)
    assert shapes["inception2.branch4.0"] == (1, 64, 7, 7)  # the stride-1 max-pool keeps the size


def test_output_shape_and_dtype(zoo):
    zoo.check_shapes("inception", {})


@pytest.mark.parametrize("c,k", [(1, 10), (3, 5)])
def test_matches_torch_twin(c, k, zoo):
    torch.manual_seed(0)
    zoo.match_twin(numcnn.models.get("inception", in_channels=c, num_classes=k), TInceptionNet(c, k), c)


def test_block_concatenates_branches_in_order():
    numcnn.manual_seed(0)
    block = numcnn.models.Inception(8, 2, 3, 4, 1, 3, 5).eval()
    x = numcnn.tensor(np.random.default_rng(0).standard_normal((2, 8, 6, 6)).astype(np.float32))
    out = block(x).numpy()
    assert out.shape == (2, 2 + 4 + 3 + 5, 6, 6) and block.out_channels == 14
    parts = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
    np.testing.assert_array_equal(out, np.concatenate([p.numpy() for p in parts], axis=1))


def test_overfits_one_batch(zoo):
    numcnn.manual_seed(0)
    first, last, acc = zoo.overfit(numcnn.models.get("inception"), 1, steps=10, lr=1e-2)
    assert acc == 1.0
    assert last < 0.5 * first
