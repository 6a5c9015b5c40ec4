"""A small ResNet for 28x28 images (He et al. 2016), with torchvision's structure and attribute names.

stem: conv1 3x3 (16) -> bn1 -> relu                    (16, 28, 28)
layer1: blocks of 16 channels, stride 1                 (16 * e, 28, 28)
layer2: blocks of 32 channels, the first with stride 2  (32 * e, 14, 14)
layer3: blocks of 64 channels, the first with stride 2  (64 * e, 7, 7)
avgpool (global) -> flatten -> fc                       (num_classes,)

e (``expansion``) is 1 for basic blocks and 4 for bottleneck blocks. An equivalent torch module built from
torchvision's ``BasicBlock`` / ``Bottleneck`` with these stages has the same state_dict keys:
``conv1.weight``, ``bn1.*``, ``layer{1,2,3}.{i}.conv1.weight``, ``...bn1.*``, ``...conv2.weight``, ``...bn2.*``,
(bottleneck: ``...conv3.weight``, ``...bn3.*``), ``...downsample.0.weight`` (1x1 conv), ``...downsample.1.*`` (BN),
``fc.weight``, ``fc.bias``.
"""

from __future__ import annotations

from .. import nn
from .registry import make_recipe, register


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions; conv1 carries the stride.
    x: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)."""

    expansion = 1
    _fusable = (("conv1", "bn1"), ("conv2", "bn2"))  # numcnn.nn.utils.fuse folds these pairs

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50's block: 1x1 reduce to ``planes``, 3x3 (carrying the stride, as torchvision's "v1.5"),
    1x1 expand to ``planes * 4``, plus the shortcut. x: (N, inplanes, H, W) -> (N, 4 planes, H/stride, W/stride)."""

    expansion = 4
    _fusable = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


@register("resnet", make_recipe("sgd", 0.1, optimizer_kwargs={"momentum": 0.9, "nesterov": True},
                                scheduler="onecycle", max_lr=0.1, batch_size=128, epochs=15, augment=True,
                                weight_decay=5e-4),
          "a small ResNet: 3x3 stem (16), three stages of basic or bottleneck blocks (16/32/64), global pool, fc")
class ResNet(nn.Module):
    """Small ResNet for (N, in_channels, 28, 28) -> (N, num_classes) logits.

    Options: ``blocks_per_stage`` (an int, or three ints, one per stage; 2 gives 14 layers with basic blocks),
    ``bottleneck`` (use Bottleneck blocks, widths 64/128/256 after expansion), ``zero_init_residual``
    (start each block's last BN at weight 0, so every block begins as the identity, as torchvision's option).
    Convolutions are initialised as torchvision does: Kaiming-normal, fan_out, ReLU gain.
    """

    _fusable = (("conv1", "bn1"),)

    def __init__(self, in_channels: int = 1, num_classes: int = 10, blocks_per_stage: int | tuple = 2,
                 bottleneck: bool = False, zero_init_residual: bool = False):
        super().__init__()
        if isinstance(blocks_per_stage, int):
            counts = (blocks_per_stage,) * 3
        else:
            counts = tuple(blocks_per_stage) if isinstance(blocks_per_stage, (tuple, list)) else ()
        if len(counts) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
            raise ValueError(f"ResNet: blocks_per_stage must be a positive int or three of them, "
                             f"got {blocks_per_stage!r}")
        block = Bottleneck if bottleneck else BasicBlock
        self.inplanes = 16
        self.conv1 = conv3x3(in_channels, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.layer1 = self._make_layer(block, 16, counts[0], stride=1)
        self.layer2 = self._make_layer(block, 32, counts[1], stride=2)
        self.layer3 = self._make_layer(block, 64, counts[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64 * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # Projection shortcut: the identity cannot be added when the shape changes.
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        """x: (N, C, 28, 28) float32 -> logits (N, num_classes) float32."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))
