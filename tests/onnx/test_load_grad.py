"""Gradients through an imported graph: the operators numcnn.onnx adds (Pad in every mode, Erf) against central
finite differences in float64, and a whole exported-then-imported ResNet against the original model's gradients."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import numcnn  # noqa: E402
import numcnn.models  # noqa: E402
import numcnn.nn.functional as F  # noqa: E402
import numcnn.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        hi = f(x)
        x[i] = old - eps
        lo = f(x)
        x[i] = old
        g[i] = (hi - lo) / (2 * eps)
    return g


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_and_erf_gradients_match_finite_differences(mode):
    rng = np.random.default_rng(0)
    pads = np.array([0, 1, 2, -1, 0, 0, 1, 1], np.int64)  # (N, C, H, W) begins then ends; one crop
    nodes = [helper.make_node("Pad", ["x", "p", "v"], ["a"], mode=mode), helper.make_node("Erf", ["a"], ["y"])]
    inits = [numpy_helper.from_array(pads, "p"), numpy_helper.from_array(np.float64(0.3), "v")]
    if mode != "constant":
        inits[1] = numpy_helper.from_array(np.float64(0.0), "v")
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 2, 3, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    net = numcnn.onnx.load(m.SerializeToString())
    x = 0.7 * rng.standard_normal((1, 2, 3, 4))
    r = rng.standard_normal(net(x).shape)

    def loss(arr):
        return float((net(arr).numpy() * r).sum())

    xt = numcnn.tensor(x.copy(), requires_grad=True)
    (net(xt) * numcnn.tensor(r)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), _numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


def test_imported_resnet_has_the_original_gradients():
    numcnn.manual_seed(0)
    model = numcnn.models.get("resnet", blocks_per_stage=1).eval()
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, numcnn.nn.BatchNorm2d):
            m.running_var.data[...] = 0.5 + rng.random(m.num_features)
    net = numcnn.onnx.load(numcnn.onnx.to_onnx(model, np.zeros((1, 1, 28, 28), np.float32)).SerializeToString())
    x = numcnn.tensor(rng.standard_normal((3, 1, 28, 28)).astype(np.float32))
    y = numcnn.tensor(np.array([1, 4, 9]))
    for m in (model, net):
        F.cross_entropy(m(x), y).backward()
    theirs = dict(net.named_parameters())
    assert set(theirs) == {k for k, _ in model.named_parameters()}
    for k, p in model.named_parameters():
        np.testing.assert_allclose(theirs[k].grad.numpy(), p.grad.numpy(), rtol=1e-4,
                                   atol=1e-5 * float(np.abs(p.grad.numpy()).max()), err_msg=k)
    # The BatchNorm statistics are buffers, under the same keys as in the model.
    assert set(dict(net.named_buffers())) == {k for k, _ in model.named_buffers() if "num_batches" not in k}
