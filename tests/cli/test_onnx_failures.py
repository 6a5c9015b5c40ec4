"""ONNX files that load but fail while running, or whose outputs do not fit the class names: ``numcnn evaluate`` and
``numcnn predict`` refuse each with one stderr line naming the file and what went wrong (exit status 2, no
traceback), and predict never prints a score under a class name it may not belong to.

Decision for a file whose run config has no class names (``dataset.classes`` missing or empty): refused, like a file
whose output count differs from the names -- no numbered classes are made up, since evaluate's per-class table and
predict's output both promise the run's names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

F, D = TensorProto.FLOAT, TensorProto.DOUBLE


@pytest.fixture(scope="module")
def config(trained_run) -> dict:
    return json.loads((trained_run[0] / "config.json").read_text())


@pytest.fixture
def image(tmp_path):
    img = np.zeros((28, 28), dtype=np.uint8)
    img[3:9, 2:8] = 230
    Image.fromarray(img).save(tmp_path / "x.png")
    return tmp_path / "x.png"


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def linear(k=10, features=784, name="w"):
    """Flatten then Gemm to ``k`` scores: a linear classifier of the 28x28 images."""
    rng = np.random.default_rng(0)
    return ([helper.make_node("Flatten", ["x"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", name, "b"], ["y"], transB=1, name="fc")],
            [init(name, (0.01 * rng.standard_normal((k, features))).astype(np.float32)),
             init("b", np.zeros(k, np.float32))])


def write(path, nodes, inits, config, in_type=F, in_shape=("batch", 1, 28, 28), outputs=("y",), meta=None):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", in_type, list(in_shape))],
                          [helper.make_tensor_value_info(o, F, None) for o in outputs], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    props = {"numcnn.config": json.dumps(config), **(meta or {})}
    helper.set_model_props(m, props)
    path.write_bytes(m.SerializeToString())
    return path


def refused(r, path, *needles):
    assert r.rc == 2, (r.rc, r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    assert str(path) in lines[0], lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert r.out == ""  # nothing printed before the refusal, no score in particular


def both(cli, path, image, data_dir, *needles):
    refused(cli("evaluate", path, "--data-dir", data_dir, "--out", path.parent), path, *needles)
    refused(cli("predict", path, image), path, *needles)


def test_a_well_formed_hand_made_file_runs(cli, config, tmp_path, image, data_dir, parse_accuracy):
    """The harness itself: the same kind of file, without the fault, evaluates and predicts."""
    path = write(tmp_path / "ok.onnx", *linear(), config)
    r = cli("evaluate", path, "--data-dir", data_dir, "--out", tmp_path)
    assert r.rc == 0, r.err
    parse_accuracy(r.last)
    r = cli("predict", path, image)
    assert r.rc == 0, r.err
    assert len(r.lines) == 4 and r.lines[1].strip().rsplit(None, 1)[0] in config["dataset"]["classes"]


def test_declared_input_shape_that_is_not_the_runs(cli, config, tmp_path, image, data_dir):
    path = write(tmp_path / "shape.onnx", *linear(features=1024), config, in_shape=("batch", 1, 32, 32))
    both(cli, path, image, data_dir, "fails on the run's images", "expected shape (batch, 1, 32, 32), got (")


def test_shape_mismatch_inside_the_graph(cli, config, tmp_path, image, data_dir):
    path = write(tmp_path / "inner.onnx", *linear(features=100), config)
    both(cli, path, image, data_dir, "fails on the run's images", "ONNX node 'fc' (Gemm)")


def test_impossible_reshape(cli, config, tmp_path, image, data_dir):
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")]
    path = write(tmp_path / "reshape.onnx", nodes, [init("s", np.array([0, 7, 5], np.int64))], config)
    both(cli, path, image, data_dir, "fails on the run's images", "ONNX node 'reshape' (Reshape)")


def test_size_over_the_limit(cli, config, tmp_path, image, data_dir):
    nodes, inits = linear()
    nodes = [helper.make_node("Pad", ["x", "p"], ["xp"], name="pad")] + nodes
    nodes[1].input[0] = "xp"
    inits.append(init("p", np.array([0, 0, 0, 10**9, 0, 0, 0, 10**9], np.int64)))
    path = write(tmp_path / "huge.onnx", nodes, inits, config)
    both(cli, path, image, data_dir, "ONNX node 'pad' (Pad)", "more than the limit")


def test_float64_input(cli, config, tmp_path, image, data_dir):
    nodes, inits = linear()
    nodes = [helper.make_node("Cast", ["x"], ["x32"], to=F, name="cast")] + nodes
    nodes[1].input[0] = "x32"
    path = write(tmp_path / "double.onnx", nodes, inits, config, in_type=D)
    both(cli, path, image, data_dir, "input 'x': expected dtype float64, got float32")


def test_three_scores_against_ten_class_names(cli, config, tmp_path, image, data_dir):
    path = write(tmp_path / "three.onnx", *linear(k=3), config)
    both(cli, path, image, data_dir, "gives 3 scores per image, but its run config names 10 classes",
         "refusing to report scores")


def test_three_class_config_evaluated_against_ten_labels(cli, config, tmp_path, image, data_dir):
    """Model and names agree (3), the dataset's labels do not (10): evaluate refuses; predict may name them."""
    three = {**config, "dataset": {**config["dataset"], "classes": ["a", "b", "c"]},
             "model": {**config["model"], "num_classes": 3}}
    path = write(tmp_path / "three-names.onnx", *linear(k=3), three)
    refused(cli("evaluate", path, "--data-dir", data_dir, "--out", tmp_path), path,
            "names 3 classes, but the labels of", "are 10 classes")
    r = cli("predict", path, image)
    assert r.rc == 0 and sorted(line.split()[0] for line in r.lines[1:]) == ["a", "b", "c"]


@pytest.mark.parametrize("classes, needle", [
    (None, "dataset.classes is missing, expected a list of 1 to 10000 class names (strings)"),
    ([], "dataset.classes is [], expected a list of 1 to 10000 class names (strings)"),
    (["a", 3], "dataset.classes.1 is 3, expected a string")])
def test_metadata_without_class_names(cli, config, tmp_path, image, data_dir, classes, needle):
    ds = {k: v for k, v in config["dataset"].items() if k != "classes"}
    if classes is not None:
        ds["classes"] = classes
    path = write(tmp_path / "nameless.onnx", *linear(), {**config, "dataset": ds})
    both(cli, path, image, data_dir, needle)


def test_other_config_faults(cli, config, tmp_path, image, data_dir):
    bad = {**config, "normalization": {"mean": [0.5], "std": [0]}}
    path = write(tmp_path / "std0.onnx", *linear(), bad)
    both(cli, path, image, data_dir, "normalization.std.0 is 0, expected a number > 0")
    bad = {**config, "dataset": {**config["dataset"], "image_shape": [1, 28]}}
    path = write(tmp_path / "shape2.onnx", *linear(), bad)
    both(cli, path, image, data_dir, "dataset.image_shape is [1, 28], expected a list of 3 sizes")
    path = write(tmp_path / "loss.onnx", *linear(), {**config, "recipe": {**config["recipe"], "loss": "hinge"}})
    both(cli, path, image, data_dir, 'recipe.loss is "hinge", expected one of "cross_entropy", "mse"')


def test_two_outputs(cli, config, tmp_path, image, data_dir):
    nodes, inits = linear()
    nodes.append(helper.make_node("Relu", ["y"], ["z"], name="relu"))
    path = write(tmp_path / "two.onnx", nodes, inits, config, outputs=("y", "z"))
    both(cli, path, image, data_dir, "gives 2 outputs")


def test_unknown_input_metadata(cli, config, tmp_path, image, data_dir):
    path = write(tmp_path / "what.onnx", *linear(), config, meta={"numcnn.input": "uint8"})
    both(cli, path, image, data_dir, "numcnn.input='uint8' is neither 'pixels' nor 'normalized'")
