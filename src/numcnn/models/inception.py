"""A small GoogLeNet-style network for 28x28 images (Szegedy et al. 2015, with batch norm).

conv1: BasicConv2d 3x3 (32)   (32, 28, 28)
maxpool1 2x2                  (32, 14, 14)
inception1 (16, 16->32, 8->8, pool->8)     (64, 14, 14)
maxpool2 2x2                  (64, 7, 7)
inception2 (32, 32->64, 8->16, pool->16)   (128, 7, 7)
avgpool (global) -> flatten -> fc          (num_classes,)

Names follow torchvision's GoogLeNet (``BasicConv2d`` with ``conv``/``bn``; ``Inception`` with ``branch1`` ...
``branch4``), so a torch module built from those classes with these widths has the same state_dict keys.
Unlike torchvision, whose "5x5" branch is really 3x3, branch3 here is a true 5x5 convolution.
"""

from __future__ import annotations

from .. import nn
from ..autograd import cat
from .registry import make_recipe, register


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm2d (eps 1e-3, as torchvision's GoogLeNet) -> ReLU."""

    _fusable = (("conv", "bn"),)

    def __init__(self, cin: int, cout: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """Four parallel branches over the same input, concatenated along channels:
    1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | maxpool3x3 (stride 1, pad 1) -> 1x1.
    x: (N, cin, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W). The 1x1 reductions before the large
    kernels are what keep the block cheap (the "network in network" trick)."""

    def __init__(self, cin: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), BasicConv2d(cin, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


@register("inception", make_recipe("adam", 3e-3, scheduler="onecycle", max_lr=3e-3, batch_size=100, epochs=3),
          "a small GoogLeNet: stem conv, pool, inception block, pool, inception block, global pool, fc")
class InceptionNet(nn.Module):
    """(N, in_channels, 28, 28) -> logits (N, num_classes); the layout is in the module docstring."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = BasicConv2d(in_channels, 32, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(2)
        self.inception1 = Inception(32, 16, 16, 32, 8, 8, 8)
        self.maxpool2 = nn.MaxPool2d(2)
        self.inception2 = Inception(self.inception1.out_channels, 32, 32, 64, 8, 16, 16)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inception2.out_channels, num_classes)

    def forward(self, x):
        """x: (N, C, 28, 28) float32 -> logits (N, num_classes) float32."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.inception1(x))
        x = self.inception2(x)
        return self.fc(self.avgpool(x).flatten(1))
