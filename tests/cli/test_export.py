"""numcnn export: an ONNX file that onnxruntime runs and that evaluate / predict accept like the run itself."""

import json

import numpy as np
import pytest
from PIL import Image

onnx = pytest.importorskip("onnx")


def one_line_error(r, *needles):
    assert r.rc == 2 and r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err
    for n in needles:
        assert n in lines[0]


def test_export_then_evaluate_and_predict_the_onnx_file(cli, trained_run, data_dir, tmp_path, parse_accuracy):
    run, accuracy = trained_run
    path = tmp_path / "model.onnx"
    r = cli("export", run, path)
    assert r.rc == 0, r.err
    assert r.last.startswith(f"wrote {path} (opset 17, input (batch, 1, 28, 28): pixels in [0, 1]")
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["numcnn.config"]) == json.loads((run / "config.json").read_text())
    assert meta["numcnn.input"] == "pixels"

    # the file alone reproduces the run's test accuracy
    r = cli("evaluate", path, "--data-dir", data_dir, "--out", tmp_path)
    assert r.rc == 0, r.err
    assert parse_accuracy(r.last) == accuracy

    # and predicts the same probabilities as the run folder
    img = np.zeros((28, 28), dtype=np.uint8)
    img[8:20, 10:18] = 200
    Image.fromarray(img).save(tmp_path / "x.png")
    a, b = cli("predict", run, tmp_path / "x.png"), cli("predict", path, tmp_path / "x.png")
    assert a.rc == b.rc == 0 and a.lines == b.lines

    # the default file takes pixels in [0, 1] and normalises them itself
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(0).random((5, 1, 28, 28)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], numcnn_logits(run, x), rtol=1e-4, atol=1e-4)


def numcnn_logits(run, pixels):
    """The run's model (in numcnn) on ``pixels`` in [0, 1], normalised as in training."""
    import numcnn
    from numcnn.cli import runs
    from numcnn.data import Normalize

    loaded = runs.load_trained(run)
    norm = loaded.config["normalization"]
    with numcnn.no_grad():
        return loaded.model(numcnn.tensor(Normalize(norm["mean"], norm["std"])(pixels))).numpy()


def test_export_fuse_folds_batch_norm_and_keeps_the_outputs(cli, trained_run, tmp_path):
    run, _ = trained_run
    plain, fused = tmp_path / "plain.onnx", tmp_path / "fused.onnx"
    assert cli("export", run, plain).rc == 0
    r = cli("export", run, fused, "--fuse")
    assert r.rc == 0, r.err
    assert "BatchNorm folded" in r.last
    ops = [n.op_type for n in onnx.load(str(fused)).graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 2
    assert "BatchNormalization" in [n.op_type for n in onnx.load(str(plain)).graph.node]
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(1).standard_normal((6, 1, 28, 28)).astype(np.float32)
    a, b = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for p in (plain, fused))
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())


def test_export_errors(cli, trained_run, tmp_path):
    run, _ = trained_run
    one_line_error(cli("export", run, tmp_path / "model.bin"), "should end in .onnx")
    one_line_error(cli("export", tmp_path, tmp_path / "m.onnx"), "not a numcnn run folder")
    (tmp_path / "fake.onnx").write_bytes(b"not an onnx file")
    one_line_error(cli("evaluate", tmp_path / "fake.onnx"), "fake.onnx", "not a valid ONNX file")


def test_export_with_and_without_the_normalization(cli, trained_run, data_dir, tmp_path, parse_accuracy):
    """Default: the graph normalises [0, 1] pixels; --bare: the network alone, fed normalised images. Both give the
    run's logits to 1e-4 in onnxruntime when fed what their metadata says, and the run's accuracy and classes in
    evaluate / predict (which read that metadata: no double normalization)."""
    import shutil

    ort = pytest.importorskip("onnxruntime")
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)  # the fixture's run is shared read-only: export into a copy
    r = cli("export", run)
    assert r.rc == 0, r.err
    pixels_file, bare_file = run / "model.onnx", tmp_path / "bare.onnx"
    assert r.last.startswith(f"wrote {pixels_file} (opset 17, input (batch, 1, 28, 28): pixels in [0, 1]")
    r = cli("export", run, bare_file, "--bare")
    assert r.rc == 0, r.err
    assert "normalised images ((pixels - mean) / std), the bare network" in r.last

    config = json.loads((run / "config.json").read_text())
    norm = config["normalization"]
    metas = [{p.key: p.value for p in onnx.load(str(f)).metadata_props} for f in (pixels_file, bare_file)]
    assert [m["numcnn.input"] for m in metas] == ["pixels", "normalized"]
    for m in metas:
        assert json.loads(m["numcnn.normalization"]) == {"mean": norm["mean"], "std": norm["std"]}
        assert json.loads(m["numcnn.config"]) == config
    assert "pixels in [0, 1]" in onnx.load(str(pixels_file)).graph.input[0].doc_string

    pixels = np.random.default_rng(2).random((7, 1, 28, 28)).astype(np.float32)
    mean, std = (np.asarray(norm[k], np.float32).reshape(-1, 1, 1) for k in ("mean", "std"))
    normalised = (pixels - mean) / std
    want = numcnn_logits(run, pixels)

    def ort_run(path, x):
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]

    np.testing.assert_allclose(ort_run(pixels_file, pixels), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ort_run(bare_file, normalised), want, rtol=1e-4, atol=1e-4)
    # fed the wrong thing, each gives other logits: the metadata matters
    assert np.abs(ort_run(pixels_file, normalised) - want).max() > 1e-2
    assert np.abs(ort_run(bare_file, pixels) - want).max() > 1e-2

    accuracy = parse_accuracy(cli("evaluate", run, "--data-dir", data_dir, "--out", tmp_path).last)
    img = np.zeros((28, 28), dtype=np.uint8)
    img[3:9, 2:8] = 230
    Image.fromarray(img).save(tmp_path / "x.png")
    want_lines = cli("predict", run, tmp_path / "x.png").lines
    for f in (pixels_file, bare_file):
        r = cli("evaluate", f, "--data-dir", data_dir, "--out", tmp_path)
        assert r.rc == 0, r.err
        assert parse_accuracy(r.last) == accuracy
        r = cli("predict", f, tmp_path / "x.png")
        assert r.rc == 0, r.err
        assert r.lines == want_lines


def test_export_default_output_and_help(cli, trained_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    r = cli("export", run / "model.safetensors")  # a run's weights file: the run folder's model.onnx
    assert r.rc == 0, r.err
    assert (run / "model.onnx").is_file()
    (run / "model.onnx").unlink()
    r = cli("export", run / "checkpoint", "--bare")  # a run's checkpoint folder: the same
    assert r.rc == 0, r.err
    assert {p.key: p.value for p in onnx.load(str(run / "model.onnx")).metadata_props}["numcnn.input"] == \
        "normalized"
    lone = tmp_path / "lone-checkpoint"
    shutil.copytree(run / "checkpoint", lone)
    one_line_error(cli("export", lone), "lone-checkpoint", "give OUT.onnx")

    r = cli("export", "--help")
    assert r.rc == 0
    text = " ".join(r.out.split())
    for needle in ("OUT.onnx", "model.onnx in the run folder", "pixels in [0, 1]", "--bare",
                   "numcnn.input", "expects images already normalised"):
        assert needle in text, needle
