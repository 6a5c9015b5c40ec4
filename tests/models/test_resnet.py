"""The small ResNet against hand counts and a torchvision-style PyTorch twin."""

from __future__ import annotations

import numpy as np
import pytest

import numcnn
import numcnn.models

torch = pytest.importorskip("torch")
tnn = torch.nn


# ---------------------------------------------------------------- twin: torchvision's resnet.py, cut to 3 stages
class TBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU(inplace=True)
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class TResNet(tnn.Module):
    def __init__(self, c, k, blocks=(2, 2, 2), bottleneck=False):
        super().__init__()
        block = TBottleneck if bottleneck else TBasicBlock
        self.inplanes = 16
        self.conv1 = tnn.Conv2d(c, 16, 3, 1, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(16)
        self.relu = tnn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, 16, blocks[0], 1)
        self.layer2 = self._make_layer(block, 32, blocks[1], 2)
        self.layer3 = self._make_layer(block, 64, blocks[2], 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(64 * block.expansion, k)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                        tnn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------- hand arithmetic
def bn(ch):
    return 2 * ch  # gamma and beta


def resnet_params(c, k, blocks=(2, 2, 2), bottleneck=False):
    """Parameters counted layer by layer: 3x3 convs have 9 * in * out weights, 1x1 convs in * out, no biases."""
    total = 9 * c * 16 + bn(16)  # stem
    inplanes = 16
    for planes, n in zip((16, 32, 64), blocks):
        out = planes * (4 if bottleneck else 1)
        for i in range(n):
            if bottleneck:
                total += inplanes * planes + bn(planes) + 9 * planes * planes + bn(planes) + planes * out + bn(out)
            else:
                total += 9 * inplanes * planes + bn(planes) + 9 * planes * planes + bn(planes)
            if i == 0 and (planes != 16 or inplanes != out):
                total += inplanes * out + bn(out)  # 1x1 projection shortcut
            inplanes = out
    return total + inplanes * k + k  # fc


def resnet_macs(c, k, blocks=(2, 2, 2), bottleneck=False):
    """Multiply-accumulates per image: each conv costs (kernel area x in x out) per output pixel."""
    total = 9 * c * 16 * 28 * 28
    inplanes = 16
    for planes, n, side in zip((16, 32, 64), blocks, (28, 14, 7)):
        out, pix = planes * (4 if bottleneck else 1), side * side
        for i in range(n):
            if bottleneck:
                # The first 1x1 runs at the block's input resolution, before the stride-2 3x3.
                in_pix = (2 * side) ** 2 if (i == 0 and planes != 16) else pix
                total += inplanes * planes * in_pix + 9 * planes * planes * pix + planes * out * pix
            else:
                total += 9 * inplanes * planes * pix + 9 * planes * planes * pix
            if i == 0 and (planes != 16 or inplanes != out):
                total += inplanes * out * pix
            inplanes = out
    return total + inplanes * k


CASES = {
    "basic-2": ({}, {}),
    "basic-3": ({"blocks_per_stage": 3}, {"blocks": (3, 3, 3)}),
    "basic-1-2-1": ({"blocks_per_stage": (1, 2, 1)}, {"blocks": (1, 2, 1)}),
    "bottleneck-1": ({"bottleneck": True, "blocks_per_stage": 1}, {"blocks": (1, 1, 1), "bottleneck": True}),
    "bottleneck-2": ({"bottleneck": True}, {"bottleneck": True}),
}


def test_default_counts_by_hand():
    # stem 9x16 + 32; layer1 2 x (2 x 9x16x16 + 64); layer2 (9x16x32 + 9x32x32 + 128 + 16x32 + 64)
    # + (2 x 9x32x32 + 128); layer3 (9x32x64 + 9x64x64 + 256 + 32x64 + 128) + (2 x 9x64x64 + 256); fc 64x10 + 10
    hand = (144 + 32) + 2 * 4672 + (14528 + 18560) + (57728 + 73984) + 650
    assert hand == 174970 == resnet_params(1, 10)
    model = numcnn.models.get("resnet")
    assert sum(p.numel() for p in model.parameters()) == hand
    s = numcnn.utils.summary(model, (1, 28, 28), print_fn=None)
    # stem 9x16x784; layer1 4 x 9x16x16x784; layer2 (9x16x32 + 3 x 9x32x32 + 16x32) x 196;
    # layer3 (9x32x64 + 3 x 9x64x64 + 32x64) x 49; fc 640
    assert s.total_macs == 112896 + 7225344 + 6420960 + 6424096 + 640 == resnet_macs(1, 10)


@pytest.mark.parametrize("case", ["basic-2", "bottleneck-1"])
def test_output_shape_and_dtype(case, zoo):
    zoo.check_shapes("resnet", CASES[case][0])


@pytest.mark.parametrize("c,k", [(1, 10), (3, 5)])
@pytest.mark.parametrize("case", CASES)
def test_counts_match_hand_and_twin(case, c, k, zoo):
    options, twin_kw = CASES[case]
    model = numcnn.models.get("resnet", in_channels=c, num_classes=k, **options)
    twin = TResNet(c, k, **twin_kw)
    s = numcnn.utils.summary(model, (c, 28, 28), print_fn=None)
    assert s.total_params == resnet_params(c, k, **twin_kw) == sum(p.numel() for p in twin.parameters())
    assert s.total_macs == resnet_macs(c, k, **twin_kw) == zoo.torch_macs(twin, c)
    assert s.layers[-1].output_shape == (1, k)


# Each variant once; between them both input widths and both class counts are covered.
@pytest.mark.parametrize("case,c,k", [("basic-2", 1, 10), ("basic-1-2-1", 3, 5), ("bottleneck-1", 3, 10)])
def test_matches_torch_twin(case, c, k, zoo):
    options, twin_kw = CASES[case]
    torch.manual_seed(0)
    zoo.match_twin(numcnn.models.get("resnet", in_channels=c, num_classes=k, **options), TResNet(c, k, **twin_kw), c)


def test_shortcuts_are_identity_unless_the_shape_changes():
    m = numcnn.models.get("resnet")
    assert [b.downsample is None for layer in (m.layer1, m.layer2, m.layer3) for b in layer] == [
        True, True, False, True, False, True]
    assert m.layer2[0].downsample[0].stride == (2, 2) and m.layer2[0].downsample[0].kernel_size == (1, 1)
    b = numcnn.models.get("resnet", bottleneck=True)
    # 16 -> 64 channels at stride 1 still needs a projection; the stride-2 blocks carry it on the 3x3 conv.
    assert b.layer1[0].downsample is not None and b.layer1[0].downsample[0].stride == (1, 1)
    assert b.layer2[0].conv2.stride == (2, 2) and b.layer2[0].conv1.stride == (1, 1)
    assert b.fc.in_features == 256


def test_zero_init_residual_blocks_start_as_identity():
    numcnn.manual_seed(0)
    m = numcnn.models.get("resnet", zero_init_residual=True)
    x = numcnn.tensor(np.random.default_rng(1).standard_normal((2, 16, 28, 28)).astype(np.float32))
    # bn2's gamma is 0, so the residual branch adds exactly beta = 0: the block is relu(x).
    for mode in (True, False):
        m.train(mode)
        np.testing.assert_array_equal(m.layer1[1](x).numpy(), np.maximum(x.numpy(), 0))
    b = numcnn.models.get("resnet", bottleneck=True, zero_init_residual=True)
    assert not b.layer3[1].bn3.weight.numpy().any() and b.layer3[1].bn2.weight.numpy().all()


def test_convolutions_use_kaiming_fan_out_init():
    numcnn.manual_seed(0)
    w = numcnn.models.get("resnet").layer3[1].conv2.weight.numpy()  # 64 x 64 x 3 x 3 = 36,864 draws
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"): std = sqrt(2 / (64 x 9))
    assert abs(w.std() / np.sqrt(2 / 576) - 1) < 0.02
    assert abs(w.mean()) < 0.01 * np.sqrt(2 / 576) * 10


@pytest.mark.parametrize("bad", [0, -1, (1, 2), (1, 0, 1), "2", True, 1.5])
def test_bad_blocks_per_stage(bad):
    with pytest.raises(ValueError, match="blocks_per_stage"):
        numcnn.models.get("resnet", blocks_per_stage=bad)


@pytest.mark.parametrize("options,steps", [({}, 8), ({"bottleneck": True, "blocks_per_stage": 1}, 8)])
def test_overfits_one_batch(options, steps, zoo):
    numcnn.manual_seed(0)
    first, last, acc = zoo.overfit(numcnn.models.get("resnet", **options), 1, steps, lr=1e-2)
    assert acc == 1.0
    assert last < 0.5 * first
