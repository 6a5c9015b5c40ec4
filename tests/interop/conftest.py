"""PyTorch twins of the zoo models, handed out through the ``twins`` fixture (pytest runs with
--import-mode=importlib, so a sibling helper module cannot be imported by name).

A twin mirrors a numcnn model's module tree with torch.nn layers of the same configuration and the same names;
the forward of each composite class (ResNet's blocks, the Inception block...) is written here in torch from the
architecture, independently of numcnn's code, so the twin is a reference, not a copy.
"""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest

import numcnn
import numcnn.models
from numcnn import nn


def _forwards(torch):
    def basic(s, x):
        identity = x if s.downsample is None else s.downsample(x)
        out = s.relu(s.bn1(s.conv1(x)))
        return s.relu(s.bn2(s.conv2(out)) + identity)

    def bottleneck(s, x):
        identity = x if s.downsample is None else s.downsample(x)
        out = s.relu(s.bn1(s.conv1(x)))
        out = s.relu(s.bn2(s.conv2(out)))
        return s.relu(s.bn3(s.conv3(out)) + identity)

    return {
        "ConvNet": lambda s, x: s.fc(torch.flatten(s.layer2(s.layer1(x)), 1)),
        "BasicBlock": basic,
        "Bottleneck": bottleneck,
        "ResNet": lambda s, x: s.fc(torch.flatten(s.avgpool(s.layer3(s.layer2(s.layer1(s.relu(s.bn1(s.conv1(
            x))))))), 1)),
        "BasicConv2d": lambda s, x: s.relu(s.bn(s.conv(x))),
        "Inception": lambda s, x: torch.cat([s.branch1(x), s.branch2(x), s.branch3(x), s.branch4(x)], 1),
        "InceptionNet": lambda s, x: s.fc(torch.flatten(s.avgpool(s.inception2(s.maxpool2(s.inception1(
            s.maxpool1(s.conv1(x)))))), 1)),
    }


def torch_twin(model):
    """The torch module with ``model``'s structure, layer configuration and state_dict keys (untrained weights)."""
    import torch
    import torch.nn as tnn

    forwards = _forwards(torch)

    class Twin(tnn.Module):
        def __init__(self, kind: str, children, downsample_none: bool):
            super().__init__()
            self.kind = kind
            for name, child in children:
                self.add_module(name, child)
            if downsample_none:
                self.downsample = None

        def forward(self, x):
            return forwards[self.kind](self, x)

    def leaf(m):
        if isinstance(m, nn.Conv2d):
            return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                              m.groups, m.bias is not None)
        if isinstance(m, nn.BatchNorm2d):
            return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum)
        if isinstance(m, nn.Linear):
            return tnn.Linear(m.in_features, m.out_features, m.bias is not None)
        if isinstance(m, nn.MaxPool2d):
            return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
        if isinstance(m, nn.AvgPool2d):
            return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad,
                                 m.divisor_override)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return tnn.AdaptiveAvgPool2d(m.output_size)
        if isinstance(m, nn.Flatten):
            return tnn.Flatten(m.start_dim, m.end_dim)
        if isinstance(m, nn.Dropout):
            return tnn.Dropout(m.p)
        simple = {nn.ReLU: tnn.ReLU, nn.Tanh: tnn.Tanh, nn.Sigmoid: tnn.Sigmoid}
        if type(m) in simple:
            return simple[type(m)]()
        raise TypeError(f"no torch twin for {type(m).__name__}")

    def build(m):
        children = [(name, build(c)) for name, c in m.named_children()]
        if isinstance(m, nn.Sequential):
            return tnn.Sequential(OrderedDict(children))
        if not children:
            return leaf(m)
        kind = type(m).__name__
        if kind not in forwards:
            raise TypeError(f"no torch forward for {kind}")
        return Twin(kind, children, "downsample" in vars(m) and m.downsample is None)

    return build(model)


def randomize(model, seed: int = 0) -> None:
    """Weights and BatchNorm statistics away from their initial values (fresh BN stats are 0 and 1)."""
    rng = np.random.default_rng(seed)
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if t.dtype.kind == "f":
            v = 0.5 + rng.random(t.shape) if name.endswith("running_var") else 0.3 * rng.standard_normal(t.shape)
            t.data[...] = v
        else:
            t.data[...] = 7


def zoo_model(name: str, options: dict, seed: int = 0):
    numcnn.manual_seed(seed)
    model = numcnn.models.get(name, in_channels=1, num_classes=10, **options)
    randomize(model, seed)
    return model.eval()


@pytest.fixture(scope="session")
def twins():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return SimpleNamespace(torch_twin=torch_twin, randomize=randomize, zoo_model=zoo_model)
