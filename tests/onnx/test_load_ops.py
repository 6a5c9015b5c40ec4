"""numcnn.onnx.load on one-operator graphs built with onnx.helper, checked against onnxruntime: every operator of
the issue's list (Conv ... Transpose) with its attributes (groups, dilations, asymmetric and automatic pads, ceil
mode, ...), plus the ones the exporter writes (Gelu, Slice, Expand, ...)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import numcnn  # noqa: E402
import numcnn.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F, D, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64
_ONNX = {np.dtype(np.float32): F, np.dtype(np.float64): D, np.dtype(np.int64): I64, np.dtype(bool): TensorProto.BOOL}


def build(nodes, inputs: dict, outputs: dict, inits: dict | None = None, opset: int = 17) -> bytes:
    """A model: ``inputs`` {name: example array} (their shapes become the declared ones), ``outputs`` {name: type}."""
    g = helper.make_graph(
        nodes, "case",
        [helper.make_tensor_value_info(k, _ONNX[v.dtype], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, t, None) for k, t in outputs.items()],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    opset_id = helper.make_opsetid("", opset)
    m = helper.make_model(g, opset_imports=[opset_id])
    m.ir_version = helper.find_min_ir_version_for([opset_id])
    return m.SerializeToString()


def randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def i64(*v):
    return np.asarray(v, dtype=np.int64)


N = helper.make_node
CASES: dict = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------- convolutions and linear


@case
def conv_groups_dilation_asymmetric_pads(r):
    return ([N("Conv", ["x", "w", "b"], ["y"], group=2, dilations=[2, 1], strides=[2, 1], pads=[1, 0, 2, 1])],
            {"x": randn(r, 2, 4, 9, 8)}, {"y": F}, {"w": randn(r, 6, 2, 3, 2), "b": randn(r, 6)})


@case
def conv_auto_pad_same_upper_stride2(r):
    return ([N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2], kernel_shape=[4, 3])],
            {"x": randn(r, 2, 3, 7, 8)}, {"y": F}, {"w": randn(r, 5, 3, 4, 3)})


@case
def conv_auto_pad_same_lower(r):
    return ([N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 1])],
            {"x": randn(r, 1, 2, 8, 6)}, {"y": F}, {"w": randn(r, 3, 2, 2, 2)})


@case
def conv_1d_depthwise(r):
    return ([N("Conv", ["x", "w", "b"], ["y"], group=3, pads=[2, 1], dilations=[2])],
            {"x": randn(r, 2, 3, 11)}, {"y": F}, {"w": randn(r, 6, 1, 3), "b": randn(r, 6)})


@case
def conv_transpose_groups_dilation_output_padding(r):
    return ([N("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 3], pads=[1, 2, 1, 2], output_padding=[1, 2],
               group=2, dilations=[2, 1])],
            {"x": randn(r, 2, 4, 5, 4)}, {"y": F}, {"w": randn(r, 4, 3, 3, 3), "b": randn(r, 6)})


@case
def conv_transpose_asymmetric_pads(r):
    return ([N("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], pads=[0, 1, 2, 0])],
            {"x": randn(r, 1, 3, 4, 5)}, {"y": F}, {"w": randn(r, 3, 2, 3, 3)})


@case
def conv_transpose_output_shape(r):
    return ([N("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_shape=[9, 10])],
            {"x": randn(r, 1, 2, 4, 5)}, {"y": F}, {"w": randn(r, 2, 3, 3, 3)})


@case
def conv_transpose_1d(r):
    return ([N("ConvTranspose", ["x", "w", "b"], ["y"], strides=[3], pads=[1, 1])],
            {"x": randn(r, 2, 2, 6)}, {"y": F}, {"w": randn(r, 2, 4, 4), "b": randn(r, 4)})


@case
def gemm_linear(r):
    return ([N("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"x": randn(r, 3, 5)}, {"y": F},
            {"w": randn(r, 4, 5), "b": randn(r, 4)})


@case
def gemm_trans_a_alpha_beta_broadcast_c(r):
    return ([N("Gemm", ["a", "b", "c"], ["y"], transA=1, alpha=0.5, beta=2.0)],
            {"a": randn(r, 5, 3), "b": randn(r, 5, 4)}, {"y": F}, {"c": randn(r, 1, 4)})


@case
def matmul_batched(r):
    return [N("MatMul", ["a", "b"], ["y"])], {"a": randn(r, 2, 3, 4, 5)}, {"y": F}, {"b": randn(r, 5, 6)}


# ---------------------------------------------------------------- elementwise


@case
def arithmetic_broadcast(r):
    nodes = [N("Add", ["x", "c"], ["a"]), N("Sub", ["a", "x"], ["s"]), N("Mul", ["s", "x"], ["m"]),
             N("Div", ["m", "d"], ["y"])]
    return nodes, {"x": randn(r, 2, 3, 4, 4)}, {"y": F}, {"c": randn(r, 3, 1, 1), "d": 1.5 + r.random((4,),
                                                                                                      np.float32)}


@case
def activations(r):
    nodes = [N("Relu", ["x"], ["a"]), N("LeakyRelu", ["x"], ["b"], alpha=0.2), N("Sigmoid", ["x"], ["c"]),
             N("Tanh", ["x"], ["d"]), N("Elu", ["x"], ["e"], alpha=0.7), N("Erf", ["x"], ["f"]),
             N("LeakyRelu", ["x"], ["g"])]
    return nodes, {"x": 3 * randn(r, 2, 3, 5)}, dict.fromkeys("abcdefg", F), None


@case
def softmax_axes(r):
    nodes = [N("Softmax", ["x"], ["a"], axis=1), N("Softmax", ["x"], ["b"]), N("LogSoftmax", ["x"], ["c"], axis=0)]
    return nodes, {"x": 4 * randn(r, 3, 4, 5)}, dict.fromkeys("abc", F), None


@case
def unary_math_pow_clip(r):
    nodes = [N("Abs", ["x"], ["ax"]), N("Sqrt", ["ax"], ["a"]), N("Exp", ["x"], ["b"]), N("Neg", ["x"], ["c"]),
             N("Log", ["ax"], ["d"]), N("Pow", ["ax", "p"], ["e"]), N("Clip", ["x", "lo", "hi"], ["f"]),
             N("Clip", ["x", "", "hi"], ["g"])]
    x = randn(r, 3, 4) + 0.1
    return nodes, {"x": x}, dict.fromkeys("abcdefg", F), {"p": np.float32(1.7), "lo": np.float32(-0.5),
                                                          "hi": np.float32(0.3)}


@case
def gelu_opset20(r):
    return ([N("Gelu", ["x"], ["a"]), N("Gelu", ["x"], ["b"], approximate="tanh")], {"x": 3 * randn(r, 4, 5)},
            {"a": F, "b": F}, None, 20)


@case
def where_and_cast(r):
    nodes = [N("Cast", ["x"], ["xi"], to=I64), N("Cast", ["xi"], ["y"], to=F), N("Cast", ["x"], ["z"], to=D),
             N("Cast", ["c"], ["cb"], to=TensorProto.BOOL), N("Where", ["cb", "x", "y"], ["w"])]
    return (nodes, {"x": 5 * randn(r, 3, 4)}, {"xi": I64, "y": F, "z": D, "w": F},
            {"c": (r.random((3, 4)) > 0.5).astype(np.int64)})


@case
def dropout_identity_constant(r):
    nodes = [N("Constant", [], ["k"], value=numpy_helper.from_array(randn(r, 1, 3, 1), "k")),
             N("Constant", [], ["ratio"], value_float=0.3),
             N("Dropout", ["x", "ratio"], ["d"]), N("Identity", ["d"], ["i"]), N("Mul", ["i", "k"], ["y"])]
    return nodes, {"x": randn(r, 2, 3, 4)}, {"y": F}, None


# ---------------------------------------------------------------- pooling and normalisation


@case
def max_pool_stride_pad(r):
    return [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], {
        "x": randn(r, 2, 3, 9, 8)}, {"y": F}, None


@case
def max_pool_ceil_dilation(r):
    return ([N("MaxPool", ["x"], ["y"], kernel_shape=[2, 3], strides=[2, 2], dilations=[2, 1], ceil_mode=1)],
            {"x": randn(r, 1, 2, 10, 9)}, {"y": F}, None)


@case
def max_pool_asymmetric_pads_default_strides(r):
    return ([N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], pads=[0, 1, 1, 0])],
            {"x": randn(r, 1, 2, 5, 6)}, {"y": F}, None)


@case
def max_pool_same_upper_1d(r):
    return ([N("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")],
            {"x": randn(r, 2, 3, 8)}, {"y": F}, None)


@case
def average_pool_excluding_pad(r):
    return ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
            {"x": randn(r, 2, 3, 7, 8)}, {"y": F}, None)


@case
def average_pool_including_pad(r):
    return ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 2], strides=[1, 2], pads=[1, 1, 1, 1],
               count_include_pad=1)], {"x": randn(r, 1, 2, 6, 7)}, {"y": F}, None)


@case
def average_pool_ceil_mode(r):
    return ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)],
            {"x": randn(r, 1, 2, 8, 8)}, {"y": F}, None)


@case
def average_pool_asymmetric_pads(r):
    return ([N("AveragePool", ["x"], ["a"], kernel_shape=[2, 3], pads=[1, 0, 0, 2]),
             N("AveragePool", ["x"], ["b"], kernel_shape=[2, 3], pads=[1, 0, 0, 2], count_include_pad=1)],
            {"x": randn(r, 1, 2, 5, 6)}, {"a": F, "b": F}, None)


@case
def global_average_pool(r):
    return [N("GlobalAveragePool", ["x"], ["y"])], {"x": randn(r, 2, 3, 5, 4)}, {"y": F}, None


@case
def batch_normalization(r):
    inits = {"s": randn(r, 3), "b": randn(r, 3), "m": randn(r, 3), "v": 0.5 + r.random(3).astype(np.float32)}
    return ([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
            {"x": randn(r, 2, 3, 4, 5)}, {"y": F}, inits)


@case
def layer_normalization(r):
    inits = {"s": randn(r, 5), "b": randn(r, 5), "s3": randn(r, 3, 4, 5)}
    return ([N("LayerNormalization", ["x", "s", "b"], ["a"]),
             N("LayerNormalization", ["x", "s3"], ["c"], axis=1, epsilon=1e-3)],
            {"x": randn(r, 2, 3, 4, 5)}, {"a": F, "c": F}, inits)


# ---------------------------------------------------------------- shapes


@case
def flatten_axes(r):
    nodes = [N("Flatten", ["x"], ["a"]), N("Flatten", ["x"], ["b"], axis=0), N("Flatten", ["x"], ["c"], axis=-1),
             N("Flatten", ["x"], ["d"], axis=3)]
    return nodes, {"x": randn(r, 2, 3, 4, 5)}, dict.fromkeys("abcd", F), None


@case
def reshape_zero_and_minus_one(r):
    return ([N("Reshape", ["x", "s"], ["y"]), N("Transpose", ["y"], ["t"], perm=[2, 0, 1]),
             N("Transpose", ["x"], ["u"])],
            {"x": randn(r, 2, 3, 4, 5)}, {"y": F, "t": F, "u": F}, {"s": i64(0, -1, 5)})


@case
def concat_three(r):
    return ([N("Concat", ["a", "b", "c"], ["y"], axis=1), N("Concat", ["a", "a"], ["z"], axis=-1)],
            {"a": randn(r, 2, 1, 3), "b": randn(r, 2, 4, 3)}, {"y": F, "z": F}, {"c": randn(r, 2, 2, 3)})


@case
def shape_gather_unsqueeze_concat_reshape(r):
    # The dynamic flatten older exporters write: reshape(x, [shape(x)[0], -1]).
    nodes = [N("Shape", ["x"], ["s"]), N("Gather", ["s", "zero"], ["n"], axis=0), N("Unsqueeze", ["n", "ax"], ["n1"]),
             N("Concat", ["n1", "minus1"], ["shape"], axis=0), N("Reshape", ["x", "shape"], ["y"]),
             N("Shape", ["x"], ["tail"], start=-2), N("Shape", ["x"], ["mid"], start=1, end=-1)]
    return (nodes, {"x": randn(r, 3, 2, 4, 5)}, {"y": F, "tail": I64, "mid": I64},
            {"zero": np.int64(0), "ax": i64(0), "minus1": i64(-1)})


@case
def gather_indices(r):
    return ([N("Gather", ["x", "i"], ["a"], axis=1), N("Gather", ["x", "j"], ["b"], axis=-1)],
            {"x": randn(r, 2, 4, 3)}, {"a": F, "b": F}, {"i": np.array([[0, -1], [2, 2]], np.int64),
                                                         "j": np.int64(-2)})


@case
def pad_modes(r):
    nodes = [N("Pad", ["x", "p", "v"], ["a"]), N("Pad", ["x", "p"], ["b"], mode="reflect"),
             N("Pad", ["x", "p"], ["c"], mode="edge"), N("Pad", ["x", "neg"], ["d"])]
    return (nodes, {"x": randn(r, 1, 2, 4, 5)}, dict.fromkeys("abcd", F),
            {"p": i64(0, 0, 1, 2, 0, 1, 2, 1), "v": np.float32(-3.5), "neg": i64(0, 0, -1, 2, 0, 0, 1, -2)})


@case
def pad_axes_and_wrap_opset19(r):
    return ([N("Pad", ["x", "p", "", "ax"], ["a"]), N("Pad", ["x", "p", "", "ax"], ["b"], mode="wrap")],
            {"x": randn(r, 2, 3, 4)}, {"a": F, "b": F}, {"p": i64(1, 2, 2, 1), "ax": i64(-1, 1)}, 19)


@case
def reduce_opset17_attributes(r):
    nodes = [N("ReduceMean", ["x"], ["a"], axes=[2, 3]), N("ReduceMean", ["x"], ["b"], axes=[1], keepdims=0),
             N("ReduceMean", ["x"], ["c"]), N("ReduceSum", ["x", "ax"], ["d"], keepdims=0),
             N("ReduceMax", ["x"], ["e"], axes=[-1, 1]), N("ReduceMin", ["x"], ["f"], keepdims=0)]
    return nodes, {"x": randn(r, 2, 3, 4, 5)}, dict.fromkeys("abcdef", F), {"ax": i64(0, -1)}


@case
def reduce_opset18_axes_input(r):
    nodes = [N("ReduceMean", ["x", "ax"], ["a"]), N("ReduceMax", ["x", "ax"], ["b"], keepdims=0),
             N("ReduceSum", ["x", "none"], ["c"], noop_with_empty_axes=1)]
    return nodes, {"x": randn(r, 2, 3, 4)}, dict.fromkeys("abc", F), {"ax": i64(0, 2), "none": i64()}, 18


@case
def unsqueeze_squeeze_slice_expand(r):
    nodes = [N("Unsqueeze", ["x", "u"], ["a"]), N("Squeeze", ["a", "u"], ["b"]),
             N("Slice", ["x", "st", "en", "ax", "sp"], ["c"]), N("Slice", ["x", "st2", "en2"], ["d"]),
             N("Expand", ["k", "shape"], ["e"]), N("Squeeze", ["one"], ["f"])]
    inits = {"u": i64(0, -1), "st": i64(-1, 1), "en": i64(-2**63, 2**63 - 1), "ax": i64(1, 2),
             "sp": i64(-1, 2), "st2": i64(1), "en2": i64(2), "k": randn(r, 3, 1), "shape": i64(2, 1, 4),
             "one": randn(r, 1, 3, 1)}
    return nodes, {"x": randn(r, 2, 3, 5)}, dict.fromkeys("abcdef", F), inits


@case
def opset13_float64(r):
    nodes = [N("MatMul", ["x", "w"], ["c"]), N("Softmax", ["c"], ["y"], axis=1), N("Unsqueeze", ["y", "ax"], ["z"])]
    return (nodes, {"x": randn(r, 2, 3, 4, dtype=np.float64)}, {"z": D},
            {"w": randn(r, 4, 5, dtype=np.float64), "ax": i64(0)}, 13)


@pytest.mark.parametrize("name", sorted(CASES))
def test_operator_matches_onnxruntime(name, ox):
    rng = np.random.default_rng(sorted(CASES).index(name))
    nodes, inputs, outputs, inits, *opset = CASES[name](rng)
    data = build(nodes, inputs, outputs, inits, *opset)
    want = ox.ort_run(data, inputs)
    net = numcnn.onnx.load(data)
    with numcnn.no_grad():
        got = net(*inputs.values())
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for out_name, g, w in zip(outputs, got, want):
        ox.assert_rel_close(g.numpy(), w, 1e-5, f"{name}: output {out_name}")


def test_every_listed_operator_is_covered():
    """The issue's operator list, each run by at least one case above (and listed as supported)."""
    listed = ("Conv ConvTranspose Gemm MatMul Add Sub Mul Div Relu LeakyRelu Sigmoid Tanh Elu Erf Softmax MaxPool "
              "AveragePool GlobalAveragePool BatchNormalization LayerNormalization Flatten Reshape Concat Pad "
              "ReduceMean Shape Gather Unsqueeze Cast Dropout Identity Constant Transpose").split()
    rng = np.random.default_rng(0)
    used = {n.op_type for fn in CASES.values() for n in fn(rng)[0]}
    assert set(listed) <= used
    assert set(listed) <= set(numcnn.onnx.SUPPORTED_OPS)
    assert used <= set(numcnn.onnx.SUPPORTED_OPS)
