"""The benchmarked networks on both sides: numcnn's zoo models and PyTorch modules with the same structure and
state_dict keys, so the torch copy starts from numcnn's exact weights."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

MODELS = ("convnet", "lenet5", "resnet")


def numcnn_model(name: str, in_channels: int = 1):
    """numcnn.models.get(name); the ConvNet is built inline when the zoo is not importable."""
    try:
        from .. import models
    except ImportError:  # pragma: no cover - the zoo ships with numcnn; this keeps the bench usable without it
        models = None
    if models is not None and name in models.names():
        return models.get(name, in_channels=in_channels, num_classes=10)
    if name != "convnet":
        raise ValueError(f"model {name!r} is not available (numcnn.models could not be imported)")
    from .. import nn

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 5, padding=2), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2, 2))

    return nn.Sequential(OrderedDict([("layer1", block(in_channels, 16)), ("layer2", block(16, 32)),
                                      ("flatten", nn.Flatten()), ("fc", nn.Linear(7 * 7 * 32, 10))]))


def torch_model(name: str, in_channels: int = 1):
    """The PyTorch twin of ``numcnn_model(name)`` (same layers, same state_dict keys)."""
    import torch
    from torch import nn

    if name == "convnet":

        class ConvNet(nn.Module):
            def __init__(self):
                super().__init__()

                def block(cin, cout):
                    return nn.Sequential(nn.Conv2d(cin, cout, 5, padding=2), nn.BatchNorm2d(cout), nn.ReLU(),
                                         nn.MaxPool2d(2, 2))

                self.layer1, self.layer2 = block(in_channels, 16), block(16, 32)
                self.fc = nn.Linear(7 * 7 * 32, 10)

            def forward(self, x):
                return self.fc(torch.flatten(self.layer2(self.layer1(x)), 1))

        return ConvNet()
    if name == "lenet5":
        layers = []
        for lname, cin, cout, pad in (("c1", in_channels, 6, 2), ("c3", 6, 16, 0), ("c5", 16, 120, 0)):
            layers += [(lname, nn.Conv2d(cin, cout, 5, padding=pad)), (f"{lname}_tanh", nn.Tanh())]
            if lname != "c5":
                layers.append(({"c1": "s2", "c3": "s4"}[lname], nn.AvgPool2d(2)))
        layers += [("flatten", nn.Flatten()), ("f6", nn.Linear(120, 84)), ("f6_tanh", nn.Tanh()),
                   ("output", nn.Linear(84, 10))]
        return nn.Sequential(OrderedDict(layers))
    if name == "resnet":
        return _torch_resnet(in_channels)
    raise ValueError(f"no PyTorch twin for model {name!r}")


def _torch_resnet(in_channels: int):
    """torchvision's BasicBlock ResNet with three stages of two blocks (16, 32, 64 channels), 3x3 stem."""
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU()
            self.inplanes = 16
            self.layer1 = self._stage(16, 1)
            self.layer2 = self._stage(32, 2)
            self.layer3 = self._stage(64, 2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(64, 10)

        def _stage(self, planes, stride):
            down = None
            if stride != 1 or self.inplanes != planes:
                down = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            blocks = [BasicBlock(self.inplanes, planes, stride, down), BasicBlock(planes, planes)]
            self.inplanes = planes
            return nn.Sequential(*blocks)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet()


def copy_weights(src, dst) -> bool:
    """Load numcnn module ``src``'s state_dict into torch module ``dst``; False when the keys differ."""
    import torch

    ours = src.state_dict()
    theirs = dst.state_dict()
    if list(ours) != list(theirs):
        return False
    dst.load_state_dict({k: torch.from_numpy(np.array(np.asarray(v), dtype=theirs[k].numpy().dtype))
                         for k, v in ours.items()})
    return True
