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
    assert r.last.startswith(f"wrote {path} (opset 17")
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["numcnn.config"]) == json.loads((run / "config.json").read_text())

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

    ort = pytest.importorskip("onnxruntime")
    from numcnn.cli import runs

    loaded = runs.load_trained(run)
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with __import__("numcnn").no_grad():
        want = loaded.model(__import__("numcnn").tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


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
