"""ONNX files that PyTorch exports for the zoo's architectures, run by numcnn.onnx.load against torch itself:
the TorchScript exporter (dynamo=False) at opsets 13, 17 and 20, with Conv+BatchNorm fused (its default) or
kept, and once the default dynamo exporter."""

from __future__ import annotations

import io

import numpy as np
import pytest

import numcnn
import numcnn.models
import numcnn.onnx

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

ZOO = [(name, {}) for name in numcnn.models.names()] + [
    ("lenet5", {"batchnorm": True, "dropout": 0.3}),
    ("resnet", {"blocks_per_stage": 1, "bottleneck": True}),
]
ZOO_IDS = [f"{n}-{'-'.join(o) or 'default'}" for n, o in ZOO]


def _twin_with_weights(twins, case):
    name, options = ZOO[case]
    model = twins.zoo_model(name, options, seed=case)
    twin = twins.torch_twin(model).eval()
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return twin


def _check(net, twin, what):
    rng = np.random.default_rng(7)
    for batch in (1, 3):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        with numcnn.no_grad(), torch.no_grad():
            got, want = net(x).numpy(), twin(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape
        err = float(np.abs(got - want).max())
        assert err <= 1e-4 * float(np.abs(want).max()), f"{what}, batch {batch}: max abs diff {err:.3g}"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", range(len(ZOO)), ids=ZOO_IDS)
def test_torchscript_export_runs_in_numcnn(case, twins):
    twin = _twin_with_weights(twins, case)
    opset = (13, 17, 20)[case % 3]
    fold = case % 2 == 0  # folding fuses BatchNorm into Conv; without it BatchNormalization nodes remain
    buf = io.BytesIO()
    torch.onnx.export(twin, (torch.zeros(2, 1, 28, 28),), buf, dynamo=False, opset_version=opset,
                      do_constant_folding=fold, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    net = numcnn.onnx.load(buf.getvalue())
    assert net.opset == opset and net.input_names == ["x"] and net.output_names == ["logits"]
    _check(net, twin, f"{ZOO_IDS[case]} opset {opset} folding={fold}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_default_dynamo_export_runs_in_numcnn(tmp_path, twins):
    pytest.importorskip("onnxscript")
    twin = _twin_with_weights(twins, ZOO_IDS.index("resnet-blocks_per_stage-bottleneck"))
    program = torch.onnx.export(twin, (torch.zeros(2, 1, 28, 28),), dynamo=True,
                                dynamic_shapes=({0: torch.export.Dim("N")},), verbose=False)
    program.save(str(tmp_path / "resnet.onnx"))
    _check(numcnn.onnx.load(tmp_path / "resnet.onnx"), twin, "dynamo export")
