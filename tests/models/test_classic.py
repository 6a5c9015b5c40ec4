"""ShallowNet, LeNet5, ConvNet and SimpleCNN against hand counts and hand-built PyTorch twins."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import numcnn
import numcnn.models

torch = pytest.importorskip("torch")
tnn = torch.nn


# ---------------------------------------------------------------- PyTorch twins, written from the textbooks
def shallow_twin(c: int, k: int) -> tnn.Module:
    return tnn.Sequential(OrderedDict([
        ("conv", tnn.Conv2d(c, 4, 3)), ("sigmoid1", tnn.Sigmoid()), ("pool", tnn.MaxPool2d(2)),
        ("flatten", tnn.Flatten()), ("fc", tnn.Linear(4 * 13 * 13, k)), ("sigmoid2", tnn.Sigmoid()),
    ]))


def lenet5_twin(c: int, k: int, batchnorm: bool = False, dropout: float = 0.0) -> tnn.Module:
    def bn(name, n):
        return [(f"{name}_bn", tnn.BatchNorm2d(n))] if batchnorm else []

    layers = [("c1", tnn.Conv2d(c, 6, 5, padding=2)), *bn("c1", 6), ("c1_tanh", tnn.Tanh()), ("s2", tnn.AvgPool2d(2)),
              ("c3", tnn.Conv2d(6, 16, 5)), *bn("c3", 16), ("c3_tanh", tnn.Tanh()), ("s4", tnn.AvgPool2d(2)),
              ("c5", tnn.Conv2d(16, 120, 5)), *bn("c5", 120), ("c5_tanh", tnn.Tanh()),
              ("flatten", tnn.Flatten()), ("f6", tnn.Linear(120, 84)), ("f6_tanh", tnn.Tanh())]
    if dropout:
        layers.append(("dropout", tnn.Dropout(dropout)))
    layers.append(("output", tnn.Linear(84, k)))
    return tnn.Sequential(OrderedDict(layers))


class TutorialConvNet(tnn.Module):
    """The PyTorch-tutorial MNIST ConvNet, verbatim apart from in_channels."""

    def __init__(self, c: int, k: int):
        super().__init__()
        self.layer1 = tnn.Sequential(tnn.Conv2d(c, 16, kernel_size=5, stride=1, padding=2), tnn.BatchNorm2d(16),
                                     tnn.ReLU(), tnn.MaxPool2d(kernel_size=2, stride=2))
        self.layer2 = tnn.Sequential(tnn.Conv2d(16, 32, kernel_size=5, stride=1, padding=2), tnn.BatchNorm2d(32),
                                     tnn.ReLU(), tnn.MaxPool2d(kernel_size=2, stride=2))
        self.fc = tnn.Linear(7 * 7 * 32, k)

    def forward(self, x):
        out = self.layer2(self.layer1(x))
        return self.fc(out.reshape(out.size(0), -1))


def simplecnn_twin(c: int, k: int) -> tnn.Module:
    return tnn.Sequential(OrderedDict([
        ("conv", tnn.Conv2d(c, 10, 3, padding="same")), ("relu1", tnn.ReLU()), ("pool", tnn.MaxPool2d(2)),
        ("flatten", tnn.Flatten()), ("dropout", tnn.Dropout(0.5)), ("fc1", tnn.Linear(10 * 14 * 14, 100)),
        ("relu2", tnn.ReLU()), ("fc2", tnn.Linear(100, k)),
    ]))


# case id -> (registry name, options, twin builder, hand parameter count(c, k), hand MACs per image(c, k))
CASES = {
    "shallow": ("shallow", {}, shallow_twin,
                # conv 4 x (c x 3 x 3) + 4 biases; fc (4 x 13 x 13) -> k
                lambda c, k: (4 * c * 9 + 4) + (676 * k + k),
                # conv: 4 x c x 9 per output pixel, 26 x 26 of them; fc 676 x k
                lambda c, k: 4 * c * 9 * 26 * 26 + 676 * k),
    "lenet5": ("lenet5", {}, lenet5_twin,
               # c1 6x(c x 25)+6, c3 16x(6x25)+16, c5 120x(16x25)+120, f6 120x84+84, output 84xk+k
               lambda c, k: (6 * c * 25 + 6) + (16 * 6 * 25 + 16) + (120 * 16 * 25 + 120) + (120 * 84 + 84)
               + (84 * k + k),
               # c1 at 28x28, c3 at 10x10, c5 at 1x1, then the two dense layers
               lambda c, k: 6 * c * 25 * 784 + 16 * 6 * 25 * 100 + 120 * 16 * 25 + 120 * 84 + 84 * k),
    "lenet5-bn-dropout": ("lenet5", {"batchnorm": True, "dropout": 0.3},
                          lambda c, k: lenet5_twin(c, k, batchnorm=True, dropout=0.3),
                          # as lenet5, plus gamma and beta for 6 + 16 + 120 channels
                          lambda c, k: (6 * c * 25 + 6) + 2416 + 48120 + 10164 + (84 * k + k) + 2 * (6 + 16 + 120),
                          lambda c, k: 6 * c * 25 * 784 + 240000 + 48000 + 10080 + 84 * k),
    "convnet": ("convnet", {}, TutorialConvNet,
                # conv1 16x(c x 25)+16, bn1 2x16, conv2 32x(16x25)+32, bn2 2x32, fc 1568 x k + k
                lambda c, k: (16 * c * 25 + 16) + 32 + (32 * 16 * 25 + 32) + 64 + (1568 * k + k),
                # conv1 at 28x28, conv2 at 14x14
                lambda c, k: 16 * c * 25 * 784 + 32 * 16 * 25 * 196 + 1568 * k),
    "simplecnn": ("simplecnn", {}, simplecnn_twin,
                  # conv 10x(c x 9)+10, fc1 (10x14x14) x 100 + 100, fc2 100 x k + k
                  lambda c, k: (10 * c * 9 + 10) + (1960 * 100 + 100) + (100 * k + k),
                  lambda c, k: 10 * c * 9 * 784 + 1960 * 100 + 100 * k),
}


@pytest.mark.parametrize("case", CASES)
def test_output_shape_and_dtype(case, zoo):
    name, options, *_ = CASES[case]
    zoo.check_shapes(name, options)


@pytest.mark.parametrize("c,k", [(1, 10), (3, 5)])
@pytest.mark.parametrize("case", CASES)
def test_parameter_count_and_macs(case, c, k, zoo):
    name, options, twin, n_params, macs = CASES[case]
    model = numcnn.models.get(name, in_channels=c, num_classes=k, **options)
    s = numcnn.utils.summary(model, (c, 28, 28), print_fn=None)
    assert s.total_params == sum(p.numel() for p in model.parameters()) == n_params(c, k)
    assert s.total_params == sum(p.numel() for p in twin(c, k).parameters())
    assert s.total_macs == macs(c, k) == zoo.torch_macs(twin(c, k), c)
    assert s.layers[-1].output_shape == (1, k)


@pytest.mark.parametrize("c,k", [(1, 10), (3, 5)])
@pytest.mark.parametrize("case", CASES)
def test_matches_torch_twin(case, c, k, zoo):
    name, options, twin, *_ = CASES[case]
    torch.manual_seed(0)
    zoo.match_twin(numcnn.models.get(name, in_channels=c, num_classes=k, **options), twin(c, k), c)


def test_parameter_counts_by_hand():
    # Default models on MNIST (1 channel, 10 classes), counted once more in plain numbers.
    assert sum(p.numel() for p in numcnn.models.get("shallow").parameters()) == 40 + 6770
    assert sum(p.numel() for p in numcnn.models.get("lenet5").parameters()) == 156 + 2416 + 48120 + 10164 + 850
    assert sum(p.numel() for p in numcnn.models.get("convnet").parameters()) == 416 + 32 + 12832 + 64 + 15690
    assert sum(p.numel() for p in numcnn.models.get("simplecnn").parameters()) == 100 + 196100 + 1010


def test_convnet_state_dict_keys_are_the_tutorials():
    keys = list(numcnn.models.get("convnet").state_dict())
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert keys == (["layer1.0.weight", "layer1.0.bias"] + [f"layer1.1.{b}" for b in bn]
                    + ["layer2.0.weight", "layer2.0.bias"] + [f"layer2.1.{b}" for b in bn] + ["fc.weight", "fc.bias"])


def test_convnet_weights_port_both_ways(zoo):
    # numcnn -> torch: a trained-looking numcnn model loads into the tutorial module and gives the same logits.
    numcnn.manual_seed(3)
    model = numcnn.models.get("convnet")
    zoo.overfit(model, 1, steps=2, lr=1e-2)  # moves weights and BN statistics away from their initial values
    twin = TutorialConvNet(1, 10)
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((3, 1, 28, 28)).astype(np.float32)
    model.eval()
    twin.eval()
    with numcnn.no_grad(), torch.no_grad():
        zoo.assert_close(model(numcnn.tensor(x)).numpy(), twin(torch.from_numpy(x)).numpy())


def test_lenet5_xavier_init():
    numcnn.manual_seed(0)
    model = numcnn.models.get("lenet5", init="xavier")
    for name, fan_in, fan_out in (("c1", 25, 150), ("c3", 150, 400), ("c5", 400, 3000), ("f6", 120, 84),
                                  ("output", 84, 10)):
        layer = getattr(model, name)
        w = layer.weight.numpy()
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(w).max() <= bound
        # U(-b, b) has variance b^2 / 3; c5 alone has 48,000 draws, so its estimate is tight.
        tol = 0.05 if w.size > 10000 else 0.25
        assert abs(w.var() / (bound**2 / 3) - 1) < tol, name
        assert not layer.bias.numpy().any()
    # PyTorch's default init is different: c5's default bound is 1/sqrt(400) = 0.05, xavier's 0.0428.
    default = numcnn.models.get("lenet5").c5.weight.numpy()
    assert np.abs(default).max() > np.sqrt(6.0 / 3400)


def test_lenet5_options_place_layers():
    names = list(numcnn.models.get("lenet5", batchnorm=True, dropout=0.2)._modules)
    assert names == ["c1", "c1_bn", "c1_tanh", "s2", "c3", "c3_bn", "c3_tanh", "s4", "c5", "c5_bn", "c5_tanh",
                     "flatten", "f6", "f6_tanh", "dropout", "output"]
    assert numcnn.models.get("lenet5", dropout=0.2).dropout.p == 0.2
    with pytest.raises(ValueError, match="init"):
        numcnn.models.get("lenet5", init="he")
    with pytest.raises(ValueError, match="dropout"):
        numcnn.models.get("lenet5", dropout=1.0)


@pytest.mark.parametrize("name,steps,lr,loss", [
    # MSE on sigmoid outputs learns slowly (the saturation textbooks warn about), but each step is ~1 ms.
    ("shallow", 300, 1e-3, "mse"),
    ("lenet5", 10, 1e-2, "cross_entropy"),
    ("convnet", 8, 3e-3, "cross_entropy"),
    ("simplecnn", 10, 3e-3, "cross_entropy"),
])
def test_overfits_one_batch(name, steps, lr, loss, zoo):
    numcnn.manual_seed(0)
    first, last, acc = zoo.overfit(numcnn.models.get(name), 1, steps, lr, loss=loss)
    assert acc == 1.0
    assert last < 0.5 * first


def test_shallow_outputs_are_probabilities():
    numcnn.manual_seed(0)
    model = numcnn.models.get("shallow")
    x = numcnn.tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    out = model(x).numpy()
    assert ((out > 0) & (out < 1)).all()
    assert numcnn.models.recipe("shallow")["loss"] == "mse"
