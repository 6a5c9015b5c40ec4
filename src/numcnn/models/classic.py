"""The textbook networks for 28x28 images: ShallowNet, LeNet5, ConvNet and SimpleCNN.

Each takes x: (N, in_channels, 28, 28) float32 and returns (N, num_classes) float32. Layer names are chosen so
that a PyTorch module built the same way (documented in each class) has the same state_dict keys.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import nn
from .registry import make_recipe, register


@register("shallow", make_recipe("sgd", 1.0, batch_size=32, epochs=3, loss="mse"),
          "the hand-derived net: conv3x3 -> sigmoid -> maxpool2 -> fc -> sigmoid, trained with an L2 loss")
class ShallowNet(nn.Sequential):
    """The network small enough to differentiate by hand: one 3x3 convolution (no padding, 28 -> 26),
    sigmoid, 2x2 max-pool (26 -> 13), one fully connected layer and a sigmoid on the outputs.

    Its outputs are sigmoid activations in (0, 1), one per class, meant for an L2 loss against one-hot
    targets (recipe ``loss="mse"``); the largest one is the prediction.

    state_dict: ``conv.weight`` (channels, in_channels, 3, 3), ``conv.bias`` (channels,),
    ``fc.weight`` (num_classes, channels*13*13), ``fc.bias`` (num_classes,).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 4):
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(in_channels, channels, 3)),
            ("sigmoid1", nn.Sigmoid()),
            ("pool", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("fc", nn.Linear(channels * 13 * 13, num_classes)),
            ("sigmoid2", nn.Sigmoid()),
        ]))


@register("lenet5", make_recipe("adam", 3e-3, scheduler="onecycle", max_lr=3e-3, batch_size=100, epochs=10),
          "LeNet-5: conv5x5(6) tanh avgpool, conv5x5(16) tanh avgpool, conv5x5(120) tanh, fc 84 tanh, fc")
class LeNet5(nn.Sequential):
    """LeCun et al. (1998) with tanh and average pooling. C1 pads by 2 so that a 28x28 image plays the role
    of LeNet's 32x32 input: C1 (6, 28, 28) -> S2 (6, 14, 14) -> C3 (16, 10, 10) -> S4 (16, 5, 5)
    -> C5 (120, 1, 1) -> F6 (84) -> output (num_classes). C3 connects to all six S2 maps.

    Options: ``batchnorm`` puts BatchNorm2d after each convolution (``c1_bn``, ``c3_bn``, ``c5_bn``);
    ``dropout`` > 0 puts Dropout(p) before the output layer; ``init="xavier"`` draws conv/linear weights
    Xavier-uniform and zeroes their biases (``"default"`` keeps PyTorch's initialisation).

    state_dict: ``c1.*``, ``c3.*``, ``c5.*`` (conv weight/bias), ``f6.*``, ``output.*`` (linear weight/bias),
    and with batchnorm ``c1_bn.*`` etc. (weight, bias, running_mean, running_var, num_batches_tracked).
    The same keys come from torch's ``nn.Sequential(OrderedDict(...))`` with the layer names used here.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, batchnorm: bool = False, dropout: float = 0.0,
                 init: str = "default"):
        if init not in ("default", "xavier"):
            raise ValueError(f"LeNet5: init must be 'default' or 'xavier', got {init!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LeNet5: dropout must be in [0, 1), got {dropout!r}")
        layers = []
        for name, cin, cout, pad in (("c1", in_channels, 6, 2), ("c3", 6, 16, 0), ("c5", 16, 120, 0)):
            layers.append((name, nn.Conv2d(cin, cout, 5, padding=pad)))
            if batchnorm:
                layers.append((f"{name}_bn", nn.BatchNorm2d(cout)))
            layers.append((f"{name}_tanh", nn.Tanh()))
            if name != "c5":
                layers.append(({"c1": "s2", "c3": "s4"}[name], nn.AvgPool2d(2)))
        layers += [("flatten", nn.Flatten()), ("f6", nn.Linear(120, 84)), ("f6_tanh", nn.Tanh())]
        if dropout > 0:
            layers.append(("dropout", nn.Dropout(dropout)))
        layers.append(("output", nn.Linear(84, num_classes)))
        super().__init__(OrderedDict(layers))
        if init == "xavier":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)


@register("convnet", make_recipe("adam", 3e-3, scheduler="onecycle", max_lr=3e-3, batch_size=100, epochs=3),
          "the two-conv MNIST net: [conv5x5, BN, ReLU, maxpool2] x2 (16, 32 channels), linear 1568 -> classes")
class ConvNet(nn.Module):
    """The classic PyTorch-tutorial MNIST ConvNet: layer1 = [conv5x5 pad 2 (16), BN, ReLU, maxpool2]
    (16, 14, 14), layer2 = the same with 32 channels (32, 7, 7), flatten, fc 1568 -> num_classes.

    state_dict keys, exactly those of the tutorial's torch module (``layer1 = nn.Sequential(nn.Conv2d(...),
    nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2))``, ``layer2`` likewise, ``fc = nn.Linear(7*7*32, 10)``)::

        layer1.0.weight (16, C, 5, 5)  layer1.0.bias (16,)
        layer1.1.weight / bias / running_mean / running_var (16,)  layer1.1.num_batches_tracked ()
        layer2.0.weight (32, 16, 5, 5)  layer2.0.bias (32,)
        layer2.1.weight / bias / running_mean / running_var (32,)  layer2.1.num_batches_tracked ()
        fc.weight (num_classes, 1568)  fc.bias (num_classes,)
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.layer1 = _conv_bn_relu_pool(in_channels, 16)
        self.layer2 = _conv_bn_relu_pool(16, 32)
        self.fc = nn.Linear(7 * 7 * 32, num_classes)

    def forward(self, x):
        """x: (N, C, 28, 28) -> logits (N, num_classes)."""
        out = self.layer2(self.layer1(x))
        return self.fc(out.flatten(1))


def _conv_bn_relu_pool(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 5, padding=2), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2, 2))


@register("simplecnn", make_recipe("adam", 1e-3, batch_size=100, epochs=3),
          "the Keras-style net: conv3x3(10, same) ReLU, maxpool2, flatten, dropout, dense 100 ReLU, dense")
class SimpleCNN(nn.Sequential):
    """The Keras-tutorial network: conv3x3 'same' (channels, 28, 28), ReLU, maxpool2 (channels, 14, 14),
    flatten, Dropout(dropout), dense ``hidden`` ReLU, dense num_classes.

    Flatten is in NCHW order (PyTorch's), not Keras's NHWC, so Keras dense weights need their rows permuted.

    state_dict: ``conv.weight`` (channels, C, 3, 3), ``conv.bias``, ``fc1.weight`` (hidden, channels*196),
    ``fc1.bias``, ``fc2.weight`` (num_classes, hidden), ``fc2.bias``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 10, hidden: int = 100,
                 dropout: float = 0.5):
        super().__init__(OrderedDict([
            ("conv", nn.Conv2d(in_channels, channels, 3, padding="same")),
            ("relu1", nn.ReLU()),
            ("pool", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("dropout", nn.Dropout(dropout)),
            ("fc1", nn.Linear(channels * 14 * 14, hidden)),
            ("relu2", nn.ReLU()),
            ("fc2", nn.Linear(hidden, num_classes)),
        ]))
