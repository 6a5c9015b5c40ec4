"""Conv, ConvTranspose, MaxPool and AveragePool with hypothesis-drawn shapes and attributes (strides, pads,
auto_pad, dilations, groups, ceil_mode, count_include_pad, output_padding): numcnn.onnx.load either agrees with
onnxruntime (or, where onnxruntime refuses the node, with ONNX's reference evaluator) or refuses with GraphError;
it never runs a node that both oracles refuse, and nothing but GraphError escapes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

import numcnn  # noqa: E402
import numcnn.onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@st.composite
def nodes(draw):
    op = draw(st.sampled_from(["Conv", "ConvTranspose", "MaxPool", "AveragePool"]))
    nd = draw(st.sampled_from([1, 2]))
    ints = lambda lo, hi: st.lists(st.integers(lo, hi), min_size=nd, max_size=nd)  # noqa: E731
    c = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 2)), c] + draw(ints(1, 7))
    kernel = draw(ints(1, 4))
    attrs = {}
    if draw(st.booleans()):
        attrs["strides"] = draw(ints(1, 3))
    padding = draw(st.sampled_from(["pads", "auto", "none"]))
    if padding == "pads":
        attrs["pads"] = draw(st.lists(st.integers(0, 3), min_size=2 * nd, max_size=2 * nd))
    elif padding == "auto":
        attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    # onnxruntime's pools and convolutions mishandle auto_pad SAME with dilations (ONNX's reference evaluator
    # agrees with numcnn there), so the two are not drawn together.
    if op != "AveragePool" and padding != "auto" and draw(st.booleans()):
        attrs["dilations"] = draw(ints(1, 3))
    inits = {}
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if op in ("MaxPool", "AveragePool"):
        attrs["kernel_shape"] = kernel
        attrs["ceil_mode"] = draw(st.sampled_from([0, 1]))
        if op == "AveragePool":
            attrs["count_include_pad"] = draw(st.sampled_from([0, 1]))
    else:
        group = draw(st.sampled_from([g for g in (1, 2, c) if c % g == 0]))
        attrs["group"] = group
        per = draw(st.integers(1, 2))
        wshape = [per * group, c // group] if op == "Conv" else [c, per]
        inits["w"] = rng.standard_normal(wshape + kernel).astype(np.float32)
        if draw(st.booleans()):
            inits["b"] = rng.standard_normal(per * group).astype(np.float32)
        if op == "ConvTranspose" and draw(st.booleans()):
            attrs["output_padding"] = draw(ints(0, 2))
    node = helper.make_node(op, ["x", *inits], ["y"], **attrs)
    x = rng.standard_normal(shape).astype(np.float32)
    return node, x, inits


def _model(node, x, inits):
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@given(case=nodes())
def test_attributes_agree_with_onnxruntime_or_are_refused(case, ox):
    node, x, inits = case
    model = _model(node, x, inits)
    data = model.SerializeToString()
    try:
        with numcnn.no_grad():
            got = numcnn.onnx.load(data)(x).numpy()
    except numcnn.onnx.GraphError:
        event("refused by numcnn")
        return
    try:
        (want,) = ox.ort_run(data, {"x": x})
        event("compared with onnxruntime")
    except Exception:  # onnxruntime refuses some valid nodes (and some invalid ones): ask the spec's evaluator
        try:
            (want,) = ReferenceEvaluator(model).run(None, {"x": x})
            event("compared with the reference evaluator")
        except Exception:
            raise AssertionError(f"numcnn ran a node both oracles refuse: {node}") from None
    assume(want.size > 0)  # onnxruntime returns empty outputs where a window does not fit; numcnn refuses them
    ox.assert_rel_close(got, want.astype(np.float32), 1e-5, str(node))
