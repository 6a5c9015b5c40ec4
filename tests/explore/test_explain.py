"""The numbers of numcnn.explore against references: one pixel of a convolution (numpy float64 and PyTorch), a
pooling window, batch norm, saliency and Grad-CAM (PyTorch autograd), and the layer list of models with branches
(forward hooks registered by the test itself)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from numcnn import models, nn
from numcnn.explore import Explorer
from numcnn.explore.arrays import pack

MEAN, STD = 0.25, 0.5


def config_for(shape, classes: int) -> dict:
    return {"format": "numcnn-run/1", "model": {"name": "hand-made"},
            "dataset": {"name": "none", "classes": [f"c{k}" for k in range(classes)], "image_shape": list(shape)},
            "normalization": {"mean": [MEAN] * shape[0], "std": [STD] * shape[0]}}


class Geometry(nn.Module):
    """Every geometry the explanation must follow: a strided, padded (unequally), dilated, grouped convolution,
    batch norm with running statistics, a padded max pool, an average pool without counting the padding, a 'same'
    convolution with an even kernel and no bias, an adaptive average pool."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=(2, 1), dilation=(2, 1), groups=2)
        self.bn = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.same = nn.Conv2d(6, 4, (2, 3), padding="same", bias=False)
        self.gap = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(self.gap(self.same(self.avg(x))).flatten(1))


@pytest.fixture(scope="module")
def geometry():
    """(explorer of a Geometry model with random weights and statistics, an image (4, 15, 13), its forward)."""
    rng = np.random.default_rng(1)
    model = Geometry()
    model.bn.running_mean.data[...] = rng.normal(0, 0.5, 6)
    model.bn.running_var.data[...] = rng.uniform(0.5, 2.0, 6)
    model.bn.weight.data[...] = rng.normal(1, 0.3, 6)
    model.bn.bias.data[...] = rng.normal(0, 0.3, 6)
    ex = Explorer(model, config_for((4, 15, 13), 3), source="hand-made")
    pixels = rng.random((4, 15, 13)).astype(np.float32)
    forward = ex.forward({"input": {"pixels": pack(pixels)}})
    return ex, pixels, forward


def output_of(forward: dict, name: str, unpack) -> np.ndarray:
    return unpack(next(layer for layer in forward["layers"] if layer["name"] == name)["data"])


def explain(ex, pixels, layer, c, y, x):
    return ex.explain({"input": {"pixels": pack(pixels)}, "layer": layer, "channel": c, "y": y, "x": x})


def test_layer_list_of_the_geometry_model(geometry):
    ex, _, forward = geometry
    assert [(d["name"], d["type"], d["shape"], d["explain"]) for d in ex.layers] == [
        ("conv", "Conv2d", [6, 8, 7], "conv"), ("bn", "BatchNorm2d", [6, 8, 7], "batchnorm"),
        ("relu", "ReLU", [6, 8, 7], None), ("pool", "MaxPool2d", [6, 4, 4], "pool"),
        ("avg", "AvgPool2d", [6, 4, 4], "pool"), ("same", "Conv2d", [4, 4, 4], "conv"),
        ("gap", "AdaptiveAvgPool2d", [4, 2, 2], "pool"), ("fc", "Linear", [3], None)]
    assert [d["reads"] for d in ex.layers] == ["input", "conv", "bn", "relu", "pool", "avg", "same", None]
    assert [layer["name"] for layer in forward["layers"]] == [d["name"] for d in ex.layers]


@pytest.mark.parametrize("channel", [1, 4])  # one output channel in each group
def test_strided_padded_dilated_grouped_conv_pixel(geometry, unpack, channel):
    ex, pixels, forward = geometry
    conv = ex.model.conv
    x64 = ((pixels - np.float32(MEAN)) / np.float32(STD)).astype(np.float64)  # the layer's float32 input
    w, b = conv.weight.array.astype(np.float64), conv.bias.array.astype(np.float64)
    torch_map = TF.conv2d(torch.from_numpy(x64)[None], torch.from_numpy(w), torch.from_numpy(b), stride=2,
                          padding=(2, 1), dilation=(2, 1), groups=2)[0, channel].numpy()
    xp = np.pad(x64, ((0, 0), (2, 2), (1, 1)))
    group = slice(2, 4) if channel >= 3 else slice(0, 2)
    activation = output_of(forward, "conv", unpack)[channel]
    for y in range(8):
        for x in range(7):
            e = explain(ex, pixels, "conv", channel, y, x)
            taps = xp[group][:, y * 2 + np.arange(3) * 2][:, :, x * 2 + np.arange(3)]  # (2, 3, 3) the dilated window
            expected = float((taps * w[channel]).sum() + b[channel])
            assert e["result"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert e["result"] == pytest.approx(float(torch_map[y, x]), rel=1e-12, abs=1e-12)
            assert np.array_equal(np.array(e["patch"]), taps)
            assert np.allclose(np.array(e["products"]), taps * w[channel], rtol=0, atol=0)
            assert e["activation"] == float(activation[y, x])
            assert e["within"] and e["relative"] < 1e-4 and e["tolerance"] == 1e-4
            assert abs(e["result"] - e["activation"]) <= 1e-4 * max(abs(e["result"]), 1e-3)
    e = explain(ex, pixels, "conv", channel, 0, 0)
    assert e["input_channels"] == list(range(group.start, group.stop)) and e["origin"] == [-2, -1]
    assert e["padding"] == [[2, 2], [1, 1]] and e["stride"] == [2, 2] and e["dilation"] == [2, 1]
    assert e["groups"] == 2 and e["in_image"][0] == [False, False, False] and e["in_image"][1] == [False, True, True]


def test_same_conv_with_an_even_kernel_and_no_bias(geometry, unpack):
    ex, pixels, forward = geometry
    inp = output_of(forward, "avg", unpack).astype(np.float64)
    w = ex.model.same.weight.array.astype(np.float64)
    with warnings.catch_warnings():  # torch warns that it pads a copy for an even kernel (as numcnn does)
        warnings.simplefilter("ignore")
        expected = TF.conv2d(torch.from_numpy(inp)[None], torch.from_numpy(w), padding="same")[0].numpy()
    for c, y, x in [(0, 0, 0), (3, 3, 3), (2, 0, 3), (1, 3, 0), (1, 2, 1)]:
        e = explain(ex, pixels, "same", c, y, x)
        assert e["bias"] is None and e["padding"] == [[0, 1], [1, 1]]
        assert e["result"] == pytest.approx(float(expected[c, y, x]), rel=1e-12, abs=1e-12) and e["within"]


def test_maxpool_winner_is_the_argmax_of_the_window(geometry, unpack):
    ex, pixels, forward = geometry
    inp, out = output_of(forward, "relu", unpack), output_of(forward, "pool", unpack)
    padded = np.pad(inp, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    assert np.array_equal(TF.max_pool2d(torch.from_numpy(inp)[None], 3, 2, 1)[0].numpy(), out)
    for c in range(6):
        for y in range(4):
            for x in range(4):
                e = explain(ex, pixels, "pool", c, y, x)
                window = padded[c, 2 * y:2 * y + 3, 2 * x:2 * x + 3]
                assert e["kind"] == "maxpool"
                assert e["winner"] == list(np.unravel_index(np.argmax(window), window.shape))
                assert e["result"] == e["activation"] == float(window.max()) and e["difference"] == 0
                shown = np.array([[-np.inf if v is None else v for v in row] for row in e["window"]])
                assert np.array_equal(shown, window)


def test_average_pools(geometry, unpack):
    ex, pixels, forward = geometry
    inp = output_of(forward, "pool", unpack).astype(np.float64)
    avg = TF.avg_pool2d(torch.from_numpy(inp)[None], 3, 1, 1, count_include_pad=False)[0].numpy()
    for c, y, x in [(0, 0, 0), (5, 3, 3), (2, 1, 2), (3, 0, 2)]:
        e = explain(ex, pixels, "avg", c, y, x)
        assert e["kind"] == "avgpool" and e["winner"] is None
        assert e["divisor"] == (min(y + 2, 4) - max(y - 1, 0)) * (min(x + 2, 4) - max(x - 1, 0))
        assert e["result"] == pytest.approx(float(avg[c, y, x]), rel=1e-12) and e["within"]
    same = output_of(forward, "same", unpack).astype(np.float64)
    gap = TF.adaptive_avg_pool2d(torch.from_numpy(same)[None], (2, 2))[0].numpy()
    for c, y, x in [(0, 0, 0), (3, 1, 1), (1, 0, 1)]:
        e = explain(ex, pixels, "gap", c, y, x)
        assert e["divisor"] == 4 and e["result"] == pytest.approx(float(gap[c, y, x]), rel=1e-12) and e["within"]


def test_batchnorm_is_the_eval_formula(geometry, unpack):
    ex, pixels, forward = geometry
    bn = ex.model.bn
    inp = output_of(forward, "conv", unpack)
    for c, y, x in [(0, 0, 0), (5, 7, 6), (3, 4, 2)]:
        e = explain(ex, pixels, "bn", c, y, x)
        mean, var = float(bn.running_mean.data[c]), float(bn.running_var.data[c])
        gamma, beta = float(bn.weight.data[c]), float(bn.bias.data[c])
        expected = (float(inp[c, y, x]) - mean) / np.sqrt(var + 1e-5) * gamma + beta
        assert (e["mean"], e["var"], e["gamma"], e["beta"], e["eps"]) == (mean, var, gamma, beta, 1e-5)
        assert e["value"] == float(inp[c, y, x]) and e["std"] == pytest.approx(np.sqrt(var + 1e-5), rel=1e-15)
        assert e["result"] == pytest.approx(expected, rel=1e-12) and e["within"]


class WrongKernel(nn.Conv2d):
    """A convolution whose forward pass uses another kernel than its weight: the explanation must catch it."""

    def forward(self, x):
        from numcnn.nn import functional as F

        return F.conv2d(x, self.weight * 1.01, self.bias, self.stride, self.padding)


def test_a_wrong_kernel_is_caught():
    model = nn.Sequential(WrongKernel(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 6 * 6, 2))
    rng = np.random.default_rng(5)  # positive weights and pixels: no sum cancels, so 1% off is 1% of the terms
    model[0].weight.data[...] = rng.uniform(0.1, 1.0, model[0].weight.shape)
    model[0].bias.data[...] = 0.1
    ex = Explorer(model, config_for((1, 6, 6), 2))
    pixels = np.random.default_rng(2).random((1, 6, 6)).astype(np.float32)
    e = explain(ex, pixels, "0", 1, 2, 3)
    assert not e["within"] and e["relative"] > 1e-3


# -- saliency and Grad-CAM against PyTorch ---------------------------------------------------------------------


def torch_convnet(model) -> torch.nn.Module:
    """The PyTorch tutorial's ConvNet with the trained numcnn weights (same state_dict keys)."""

    def block(cin, cout):
        return torch.nn.Sequential(torch.nn.Conv2d(cin, cout, 5, padding=2), torch.nn.BatchNorm2d(cout),
                                   torch.nn.ReLU(), torch.nn.MaxPool2d(2, 2))

    class ConvNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1, self.layer2, self.fc = block(1, 16), block(16, 32), torch.nn.Linear(1568, 10)

        def forward(self, x):
            return self.fc(self.layer2(self.layer1(x)).flatten(1))

    tm = ConvNet()
    tm.load_state_dict({k: torch.from_numpy(np.array(v.data)) for k, v in model.state_dict().items()})
    return tm.eval()


@pytest.mark.parametrize("index, k", [(0, 3), (7, 0), (11, 9)])
def test_saliency_and_gradcam_equal_pytorch(explorer, unpack, index, k):
    tm = torch_convnet(explorer.model)
    pixels = torch.from_numpy(explorer.test.pixels(index)[None]).requires_grad_(True)
    norm = explorer.config["normalization"]
    kept = {}

    def keep(module, inputs, out):
        out.retain_grad()
        kept["A"] = out

    tm.layer2[0].register_forward_hook(keep)
    tm((pixels - norm["mean"][0]) / norm["std"][0])[0, k].backward()
    a, g = kept["A"].detach()[0].double(), kept["A"].grad[0].double()
    answer = explorer.saliency({"input": {"test": index}, "class": k})
    saliency = pixels.grad[0].abs().amax(dim=0)
    assert answer["class"] == k and answer["gradcam_layer"] == "layer2.0"
    np.testing.assert_allclose(unpack(answer["saliency"]), (saliency / saliency.max()).numpy(), atol=2e-5)
    alpha = g.numpy().mean(axis=(1, 2))  # Grad-CAM by hand: weights, ReLU of the weighted sum, resize, scale
    cam = np.maximum(np.einsum("k,khw->hw", alpha, a.numpy()), 0)
    cam = TF.interpolate(torch.from_numpy(cam)[None, None], size=(28, 28), mode="bilinear",
                         align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(unpack(answer["gradcam"]), cam / cam.max(), atol=2e-5)
    assert unpack(answer["gradcam"]).max() == pytest.approx(1.0) and unpack(answer["saliency"]).max() == 1.0


# -- layers of models with branches ------------------------------------------------------------------------------


def hooked_leaves(model, x: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, output) of every leaf-module call, in order, by hooks the test registers itself."""
    from numcnn.autograd import Tensor, no_grad

    calls, counts, handles = [], {}, []
    for name, m in model.named_modules():
        if not any(True for _ in m.children()):
            def hook(mod, inputs, out, name=name):
                counts[name] = counts.get(name, 0) + 1
                calls.append((name if counts[name] == 1 else f"{name}#{counts[name]}", np.array(out.data[0])))
            handles.append(m.register_forward_hook(hook))
    with no_grad():
        model(Tensor(x[None]))
    for h in handles:
        h.remove()
    return calls


@pytest.mark.parametrize("name, options, composites", [
    ("resnet", {"blocks_per_stage": 1}, []),  # a block's output is its second relu call: no new layer
    ("inception", {}, [("inception1", [64, 14, 14]), ("inception2", [128, 7, 7])]),  # concatenations are new
])
def test_branches_show_every_layer(unpack, name, options, composites):
    model = models.get(name, **options)
    ex = Explorer(model, config_for((1, 28, 28), 10))
    pixels = np.random.default_rng(3).random((1, 28, 28)).astype(np.float32)
    forward = ex.forward({"input": {"pixels": pack(pixels)}})
    leaves = hooked_leaves(model, (pixels - MEAN) / STD)
    recorded = [(layer["name"], unpack(layer["data"])) for layer in forward["layers"]]
    leaf_names = {n for n, _ in leaves}
    assert [n for n, _ in recorded if n in leaf_names] == [n for n, _ in leaves]
    for (n, a), (_, b) in zip([r for r in recorded if r[0] in leaf_names], leaves):
        assert np.array_equal(a, b), n
    assert [(n, list(a.shape)) for n, a in recorded if n not in leaf_names] == composites
    if name == "resnet":
        assert "layer1.0.relu#2" in leaf_names and "layer1.0" not in dict(recorded)
        assert any(d["reads"] == "layer1.0.relu#2" for d in ex.layers)  # the next block reads the first one
