"""numcnn.onnx.export: every zoo model and every layer with an ONNX form, run in onnxruntime at batch sizes other
than the traced one, against numcnn's own eval-mode outputs (max abs diff <= 1e-4 of the largest logit)."""

from __future__ import annotations

import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import numcnn  # noqa: E402
import numcnn.models  # noqa: E402
import numcnn.nn.functional as F  # noqa: E402
import numcnn.onnx  # noqa: E402
from numcnn import nn  # noqa: E402
from numcnn.autograd import engine, function  # noqa: E402

ZOO = [(name, {}) for name in numcnn.models.names()] + [
    ("lenet5", {"batchnorm": True, "dropout": 0.3}),
    ("resnet", {"blocks_per_stage": 1, "bottleneck": True}),
]


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Running statistics away from (0, 1), so that eval mode really uses them."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data[...] = 0.5 + rng.random(c)
            m.bias.data[...] = 0.1 * rng.standard_normal(c)
            m.running_mean.data[...] = 0.1 * rng.standard_normal(c)
            m.running_var.data[...] = 0.5 + rng.random(c)


def reference(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    with numcnn.no_grad():
        return model(numcnn.tensor(x)).numpy()


@pytest.mark.parametrize("name,options", ZOO, ids=[f"{n}-{'-'.join(o) or 'default'}" for n, o in ZOO])
def test_zoo_model_runs_in_onnxruntime_with_dynamic_batch(name, options, tmp_path, ox):
    numcnn.manual_seed(0)
    model = numcnn.models.get(name, in_channels=1, num_classes=10, **options)
    randomize_batchnorm(model)
    model.train()  # export must switch to eval mode itself, and switch back
    rng = np.random.default_rng(1)
    path = tmp_path / "m.onnx"
    numcnn.onnx.export(model, rng.standard_normal((2, 1, 28, 28)).astype(np.float32), path)
    assert model.training
    proto = onnx.load(path)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.opset_import[0].version == 17
    # Parameters keep their state_dict names.
    assert {p for p, _ in model.named_parameters()} <= {t.name for t in proto.graph.initializer}
    for batch in (1, 5):
        x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        want = reference(model, x)
        (got,) = ox.ort_run(path.read_bytes(), {"input": x})
        ox.assert_rel_close(got, want, 1e-4, f"{name} onnxruntime, batch {batch}")
        # And back: numcnn runs its own file.
        with numcnn.no_grad():
            ox.assert_rel_close(numcnn.onnx.load(path)(x).numpy(), want, 1e-5, f"{name} numcnn.onnx.load")


def test_residual_add_and_concat_are_graph_nodes(tmp_path):
    ops = {}
    for name in ("resnet", "inception"):
        numcnn.manual_seed(0)
        proto = numcnn.onnx.to_onnx(numcnn.models.get(name), np.zeros((1, 1, 28, 28), np.float32))
        ops[name] = [n.op_type for n in proto.graph.node]
    # resnet default: 3 stages x 2 basic blocks, one residual Add each; inception: 2 blocks of 4 branches.
    assert ops["resnet"].count("Add") == 6
    assert ops["resnet"].count("GlobalAveragePool") == 1
    assert ops["inception"].count("Concat") == 2
    assert "BatchNormalization" in ops["resnet"]


class Lambda(nn.Module):
    """A module whose forward is ``fn(self, x)``, holding ``layers`` as children."""

    def __init__(self, fn, **layers):
        super().__init__()
        self.fn = fn
        for k, v in layers.items():
            setattr(self, k, v)

    def forward(self, x):
        return self.fn(self, x)


def _layers():
    """(id, module, input shape, opset) for every layer and tensor operation with an ONNX form."""
    return [
        ("conv1d", Lambda(lambda s, x: s.c(x.flatten(2)), c=nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2)),
         (2, 3, 4, 5), 17),
        ("conv2d_groups_same", nn.Conv2d(4, 6, (3, 2), padding="same", groups=2, bias=False), (2, 4, 6, 5), 17),
        ("conv_transpose", nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, groups=1, dilation=1),
         (2, 3, 4, 5), 17),
        ("gelu_erf_decomposition", nn.GELU(), (2, 3, 4), 17),
        ("gelu_tanh_decomposition", nn.GELU("tanh"), (2, 3, 4), 17),
        ("gelu_op", nn.GELU(), (2, 3, 4), 20),
        ("gelu_tanh_op", nn.GELU("tanh"), (2, 3, 4), 21),
        ("activations", Lambda(lambda s, x: s.e(x) + s.l(x) + s.sg(x) * s.t(x) + F.relu(x) + s.sm(x) + s.lsm(x),
                               e=nn.ELU(0.7), l=nn.LeakyReLU(0.2), sg=nn.Sigmoid(), t=nn.Tanh(), sm=nn.Softmax(1),
                               lsm=nn.LogSoftmax(-1)), (2, 3, 4), 17),
        ("norms", Lambda(lambda s, x: s.ln(s.bn(x.flatten(1)).reshape(x.shape[0], 3, 4)),
                         bn=nn.BatchNorm1d(12), ln=nn.LayerNorm(4)), (2, 3, 4), 17),
        ("layernorm_2d_opset18", nn.LayerNorm((3, 4), elementwise_affine=False), (2, 5, 3, 4), 18),
        ("pools", Lambda(lambda s, x: s.a(x).sum((2, 3)) + s.b(x).mean((2, 3)) + s.c(x).flatten(2).max(2).values
                         + s.d(x).flatten(1) + s.e(x).flatten(2).mean(2) + 0.01 * s.a(x).sum(),
                         a=nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                         b=nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
                         c=nn.AvgPool2d(2, divisor_override=3), d=nn.AdaptiveAvgPool2d(1),
                         e=nn.AdaptiveAvgPool2d((7, 6))), (2, 3, 7, 6), 17),
        ("linear_3d_and_containers", nn.Sequential(nn.Flatten(2), nn.Linear(20, 6), nn.Dropout(0.5), nn.Identity(),
                                                   nn.Unflatten(2, (2, 3)), nn.Linear(3, 2, bias=False)),
         (2, 3, 4, 5), 17),
        ("tensor_ops", Lambda(lambda s, x: (
            x.permute(0, 2, 1, 3)[:, 1:, ::2, -1].exp().clamp(0.2, 3.0).log().abs().sqrt() ** 2
            - x.transpose(1, 2)[:, :3, 0, :2].sum(2, keepdim=True) / 3.0
            + numcnn.stack([x[:, 0, 0], x[:, 1, 1]], 1).var(2, keepdim=True)[:, None].squeeze(1).permute(0, 2, 1)
            * x.min(3).values[:, 0, 1:, None]
            + numcnn.where(np.arange(2) > 0, x[..., 1, :2], 0.5).mean((1,))[:, None, :]
            + x[:, :1, :1, :1].expand(-1, 3, 1, 2).reshape(-1, 1, 6)[..., :2]
            - (-x).max() * 0.0 + x.to(numcnn.float32).float().clone()[:, :, 2, 3:]
        )), (2, 3, 4, 5), 17),
    ]


@pytest.mark.parametrize("case", _layers(), ids=lambda c: c[0])
def test_layer_runs_in_onnxruntime(case, ox):
    name, module, shape, opset = case
    numcnn.manual_seed(0)
    randomize_batchnorm(module)
    rng = np.random.default_rng(2)
    proto = numcnn.onnx.to_onnx(module, rng.standard_normal(shape).astype(np.float32), opset)
    ops = {n.op_type for n in proto.graph.node}
    if name.startswith("gelu"):
        assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (name == "gelu_erf_decomposition")
    for batch in (shape[0], 3):
        x = rng.standard_normal((batch,) + shape[1:]).astype(np.float32)
        want = reference(module, x)
        (got,) = ox.ort_run(proto.SerializeToString(), {"input": x})
        ox.assert_rel_close(got, want, 1e-4, f"{name}, batch {batch}")
        with numcnn.no_grad():
            ox.assert_rel_close(numcnn.onnx.load(proto.SerializeToString())(x).numpy(), want, 1e-5, name)


def test_float64_model_exports_as_double(ox):
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh()).double()
    x = np.random.default_rng(3).standard_normal((2, 4))
    proto = numcnn.onnx.to_onnx(model, x)
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    (got,) = ox.ort_run(proto.SerializeToString(), {"input": x})
    ox.assert_rel_close(got, reference(model, x), 1e-12)


# ---------------------------------------------------------------- refusals


def test_adaptive_pool_other_than_1x1_is_refused():
    with pytest.raises(numcnn.onnx.ExportError, match=r"only to 1x1 \(GlobalAveragePool\)"):
        numcnn.onnx.to_onnx(nn.AdaptiveAvgPool2d(2), np.zeros((1, 1, 5, 5), np.float32))


def test_batch_statistics_are_refused():
    with pytest.raises(numcnn.onnx.ExportError, match="track_running_stats=False"):
        numcnn.onnx.to_onnx(nn.BatchNorm2d(3, track_running_stats=False), np.zeros((2, 3, 2, 2), np.float32))


def test_operation_without_onnx_form_is_named_with_the_supported_list():
    class Cube(function.Function):
        @staticmethod
        def forward(ctx, x):
            return x**3

    model = nn.Sequential()
    model.add_module("head", Lambda(lambda s, x: Cube.apply(x)))
    with pytest.raises(numcnn.onnx.ExportError) as e:
        numcnn.onnx.to_onnx(model, np.zeros((1, 2), np.float32))
    assert "operation Cube in module 'head' has no ONNX form" in str(e.value)
    assert "Conv2d" in str(e.value) and "Linear" in str(e.value)
    assert function._forward_hook is None and engine._backward_hook is None  # the tracer is gone


def test_outputs_not_computed_from_the_input_are_refused():
    with pytest.raises(numcnn.onnx.ExportError, match="output 'output_1' was not computed by numcnn operations"):
        numcnn.onnx.to_onnx(nn.MaxPool2d(2, return_indices=True), np.zeros((1, 1, 4, 4), np.float32))


def test_reshape_that_mixes_the_batch_axis_needs_a_static_batch(ox):
    model = Lambda(lambda s, x: x.reshape(-1))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with pytest.raises(numcnn.onnx.ExportError, match="dynamic_batch=False"):
        numcnn.onnx.to_onnx(model, x)
    proto = numcnn.onnx.to_onnx(model, x, dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    (got,) = ox.ort_run(proto.SerializeToString(), {"input": x})
    np.testing.assert_array_equal(got, x.reshape(-1))


@pytest.mark.parametrize("opset", [16, 22, "17"])
def test_opset_out_of_range(opset):
    with pytest.raises(ValueError, match="opset must be an int from 17 to 21"):
        numcnn.onnx.to_onnx(nn.ReLU(), np.zeros((1, 2), np.float32), opset)


def test_failed_export_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    good = numcnn.models.get("shallow")
    numcnn.onnx.export(good, np.zeros((1, 1, 28, 28), np.float32), path)
    before = path.read_bytes()
    with pytest.raises(numcnn.onnx.ExportError):
        numcnn.onnx.export(nn.AdaptiveAvgPool2d(3), np.zeros((1, 1, 28, 28), np.float32), path)

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        numcnn.onnx.export(numcnn.models.get("lenet5"), np.zeros((1, 1, 28, 28), np.float32), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.onnx"]  # no temp file left behind


def test_imported_model_works_with_evaluate_and_predict(tmp_path):
    """What `numcnn evaluate/predict model.onnx` rely on: an OnnxModule is an ordinary Module for the loop."""
    from numcnn.training import evaluate, predict

    numcnn.manual_seed(0)
    model = numcnn.models.get("convnet")
    randomize_batchnorm(model)
    numcnn.onnx.export(model, np.zeros((1, 1, 28, 28), np.float32), tmp_path / "m.onnx")
    net = numcnn.onnx.load(tmp_path / "m.onnx")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 7)
    np.testing.assert_allclose(predict(net, x, batch_size=3), predict(model, x), rtol=1e-5, atol=1e-6)
    batches = [(numcnn.tensor(x[:4]), numcnn.tensor(y[:4])), (numcnn.tensor(x[4:]), numcnn.tensor(y[4:]))]
    got, want = evaluate(net, batches), evaluate(model, batches)
    assert got.accuracy == want.accuracy and abs(got.loss - want.loss) <= 1e-5 * abs(want.loss)
    np.testing.assert_array_equal(got.confusion, want.confusion)


@pytest.mark.parametrize("mean,std", [(0.2860, 0.3530), ([0.1, 0.2, 0.3], [0.5, 0.25, 2.0])])
@pytest.mark.parametrize("dynamic_batch", [True, False])
def test_normalize_writes_the_input_normalization_into_the_graph(mean, std, dynamic_batch, ox):
    numcnn.manual_seed(0)
    channels = len(np.atleast_1d(mean))
    model = nn.Sequential(nn.Conv2d(channels, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    pixels = np.random.default_rng(0).random((3, channels, 8, 8)).astype(np.float32)
    proto = numcnn.onnx.to_onnx(model, pixels[:1] if dynamic_batch else pixels, normalize=(mean, std),
                                dynamic_batch=dynamic_batch, metadata={"numcnn.input": "overridden"})
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[numcnn.onnx.INPUT_KEY] == numcnn.onnx.INPUT_PIXELS == "pixels"
    assert __import__("json").loads(meta[numcnn.onnx.NORMALIZATION_KEY]) == {
        "mean": np.atleast_1d(mean).tolist(), "std": np.atleast_1d(std).tolist()}
    assert [n.op_type for n in proto.graph.node[:2]] == ["Sub", "Div"]
    assert "pixels in [0, 1]" in proto.graph.input[0].doc_string
    m, s = (np.asarray(v, np.float32).reshape(-1, 1, 1) for v in (mean, std))
    want = reference(model, (pixels - m) / s)
    (got,) = ox.ort_run(proto.SerializeToString(), {"input": pixels})
    ox.assert_rel_close(got, want, what="onnxruntime, pixels in")
    ox.assert_rel_close(numcnn.onnx.load(proto.SerializeToString())(pixels).numpy(), want, what="numcnn.onnx.load")
    bare = numcnn.onnx.to_onnx(model, pixels[:1])  # without normalize: the bare network, no input metadata
    assert numcnn.onnx.INPUT_KEY not in {p.key for p in bare.metadata_props}
    ox.assert_rel_close(ox.ort_run(bare.SerializeToString(), {"input": (pixels - m) / s})[0], want, what="bare")


@pytest.mark.parametrize("normalize,error,match", [
    (([0.1, 0.2], [1.0, 1.0]), ValueError, r"normalize mean must be 1 or 3 finite values"),
    ((0.5, 0.0), ValueError, "std must be non-zero"),
    ((0.5, float("nan")), ValueError, "normalize std must be 1 or 3 finite values"),
    ((0.5,), TypeError, r"normalize must be \(mean, std\)"),
])
def test_normalize_is_checked(normalize, error, match, tmp_path):
    model = nn.Conv2d(3, 2, 1)
    with pytest.raises(error, match=match):
        numcnn.onnx.export(model, np.zeros((1, 3, 4, 4), np.float32), tmp_path / "m.onnx", normalize=normalize)
    assert not (tmp_path / "m.onnx").exists()
