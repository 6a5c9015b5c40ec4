"""The HTTP API of numcnn explore (docs/explore-api.md), endpoint by endpoint, against references computed without
the explorer: the model loaded by the command line's loader, numcnn.training.evaluate, numcnn.data.photo."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from numcnn.data import DataLoader, FashionMNIST, Normalize, ToTensor
from numcnn.data.photo import load_photo
from numcnn.explore.arrays import pack
from numcnn.training import evaluate, predict


@pytest.fixture(scope="module")
def reference(trained_run, data_dir):
    """(model loaded by numcnn.cli.runs, its config, the test set, training.evaluate's result over it)."""
    from numcnn.cli import runs

    loaded = runs.load_trained(trained_run)
    test = FashionMNIST(root=data_dir, train=False)
    norm = loaded.config["normalization"]
    result = evaluate(loaded.model, DataLoader(test, batch_size=200, transform=Normalize(norm["mean"], norm["std"])))
    return loaded.model, loaded.config, test, result


def test_run_describes_the_model_and_its_layers(client, trained_run, reference):
    _, config, test, _ = reference
    run = client.get("/api/run").json()
    assert run["mode"] == "live" and run["run"] == trained_run.name and run["model"] == "convnet"
    assert run["source"] == str(trained_run / "model.safetensors")
    assert run["classes"] == config["dataset"]["classes"] and run["image_shape"] == [1, 28, 28]
    assert run["normalization"] == {"mean": [np.float32(m).item() for m in config["normalization"]["mean"]],
                                    "std": [np.float32(s).item() for s in config["normalization"]["std"]]}
    assert run["test_images"] == len(test) == 60 and "test_error" not in run
    assert [(d["name"], d["type"], d["shape"], d["explain"]) for d in run["layers"]] == [
        ("layer1.0", "Conv2d", [16, 28, 28], "conv"), ("layer1.1", "BatchNorm2d", [16, 28, 28], "batchnorm"),
        ("layer1.2", "ReLU", [16, 28, 28], None), ("layer1.3", "MaxPool2d", [16, 14, 14], "pool"),
        ("layer2.0", "Conv2d", [32, 14, 14], "conv"), ("layer2.1", "BatchNorm2d", [32, 14, 14], "batchnorm"),
        ("layer2.2", "ReLU", [32, 14, 14], None), ("layer2.3", "MaxPool2d", [32, 7, 7], "pool"),
        ("fc", "Linear", [10], None)]


@pytest.mark.parametrize("index", [0, 5, 59])
def test_forward_equals_a_direct_forward(client, reference, unpack, index):
    model, config, test, _ = reference
    norm = config["normalization"]
    image = ToTensor()(test.data[index:index + 1][:, None])
    expected = predict(model, Normalize(norm["mean"], norm["std"])(image))[0]
    answer = client.post("/api/forward", json={"input": {"test": index}}).json()
    np.testing.assert_array_equal(np.array(answer["probabilities"], dtype=np.float32), expected)
    assert answer["predicted"] == int(np.argmax(expected)) and answer["label"] == int(test.targets[index])
    np.testing.assert_array_equal(unpack(answer["input"]), image[0])
    fc = answer["layers"][-1]
    assert fc["name"] == "fc" and fc["shape"] == [10]
    for layer in answer["layers"]:
        data = unpack(layer["data"])
        assert list(data.shape) == layer["shape"] and layer["min"] == data.min() and layer["max"] == data.max()
    drawn = client.post("/api/forward", json={"input": {"pixels": pack(image[0])}}).json()
    assert drawn["label"] is None and drawn["probabilities"] == answer["probabilities"]


def test_explain_over_http(client, reference, unpack):
    model, config, test, _ = reference
    norm = config["normalization"]
    x = ((test.data[4].astype(np.float32) / 255 - np.float32(norm["mean"][0])) / np.float32(norm["std"][0]))
    w, b = model.layer1[0].weight.array.astype(np.float64), model.layer1[0].bias.array.astype(np.float64)
    xp = np.pad(x.astype(np.float64), 2)
    forward = client.post("/api/forward", json={"input": {"test": 4}}).json()
    conv_out = unpack(forward["layers"][0]["data"])
    for c, y, xx in [(0, 0, 0), (15, 27, 27), (7, 13, 2)]:
        e = client.post("/api/explain", json={"input": {"test": 4}, "layer": "layer1.0", "channel": c, "y": y,
                                              "x": xx}).json()
        expected = float((xp[y:y + 5, xx:xx + 5] * w[c, 0]).sum() + b[c])
        assert e["kind"] == "conv" and e["layer"] == "layer1.0" and e["type"] == "Conv2d"
        assert e["result"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert e["activation"] == float(conv_out[c, y, xx]) and e["within"]
        assert e["sum"] + e["bias"] == e["result"] and np.array(e["patch"]).shape == (1, 5, 5)
    pool = client.post("/api/explain", json={"input": {"test": 4}, "layer": "layer2.3", "channel": 3, "y": 6,
                                             "x": 0}).json()
    window = unpack(forward["layers"][6]["data"])[3, 12:14, 0:2]
    assert pool["winner"] == list(np.unravel_index(np.argmax(window), (2, 2))) and pool["result"] == window.max()


def test_saliency_over_http(client, unpack):
    answer = client.post("/api/saliency", json={"input": {"test": 2}, "class": 4}).json()
    saliency, gradcam = unpack(answer["saliency"]), unpack(answer["gradcam"])
    assert answer["class"] == 4 and answer["gradcam_layer"] == "layer2.0"
    assert saliency.shape == gradcam.shape == (28, 28) and saliency.dtype == np.float32
    assert saliency.min() >= 0 and saliency.max() == 1 and gradcam.min() >= 0 and gradcam.max() <= 1


def test_metrics_and_confusion_matrix(client, trained_run, reference):
    _, _, _, result = reference
    saved = json.loads((trained_run / "metrics.json").read_text())
    answer = client.get("/api/metrics").json()
    assert answer["epochs"] == saved["epochs"] and answer["test"] == saved["test"]
    confusion = answer["confusion"]
    assert confusion["matrix"] == result.confusion.tolist() and confusion["classes"] == saved["test"].get(
        "classes", confusion["classes"])
    assert confusion["accuracy"] == pytest.approx(result.accuracy) == pytest.approx(saved["test"]["accuracy"])


def test_examples_follow_the_confusion_matrix(client, reference, unpack):
    _, _, test, result = reference
    matrix = result.confusion
    labels = test.targets
    by_label = client.get("/api/examples?label=3&limit=500").json()
    assert by_label["total"] == int((labels == 3).sum()) == len(by_label["items"])
    assert [it["index"] for it in by_label["items"]] == list(np.flatnonzero(labels == 3))
    wrong = client.get("/api/examples?misclassified=1&limit=500").json()
    assert wrong["total"] == int(matrix.sum() - np.trace(matrix)) > 0
    assert all(it["label"] != it["pred"] for it in wrong["items"])
    i, j = np.unravel_index(np.argmax(matrix - np.diag(np.diag(matrix))), matrix.shape)
    cell = client.get(f"/api/examples?true={i}&pred={j}").json()
    assert cell["total"] == matrix[i, j] and all((it["label"], it["pred"]) == (i, j) for it in cell["items"])
    for it in cell["items"]:
        np.testing.assert_array_equal(unpack(it["image"]), test.data[it["index"]][None])
    page = client.get("/api/examples?misclassified=1&offset=2&limit=3").json()
    assert page["total"] == wrong["total"] and page["items"] == wrong["items"][2:5]
    everything = client.get("/api/examples?limit=500").json()
    assert everything["total"] == 60 and sum(it["label"] == it["pred"] for it in everything["items"]) == np.trace(
        matrix)


def drawing_png(tmp_path):
    """A dark stroke on white paper, 300 x 200 RGB, as a phone photo of a drawing would be."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(im).line([(60, 40), (150, 170), (240, 60)], fill=(20, 20, 30), width=18)
    path = tmp_path / "drawing.png"
    im.save(path)
    return path


def test_upload_prepares_as_numcnn_predict_does(client, tmp_path, unpack):
    path = drawing_png(tmp_path)
    answer = client.post("/api/upload", files={"file": ("drawing.png", path.read_bytes(), "image/png")}).json()
    expected, inverted = load_photo(path, (28, 28), fit="fashion-mnist")  # what numcnn predict feeds this run
    np.testing.assert_array_equal(unpack(answer["pixels"]), ToTensor()(expected[None]))
    assert answer["inverted"] is inverted is True
    assert answer["steps"][0] == "read a PNG image of 300x200 pixels (mode RGB)" and len(answer["steps"]) == 5
    forced = client.post("/api/upload", files={"file": ("d.png", path.read_bytes(), "image/png")},
                         data={"invert": "no", "fit": "stretch"}).json()
    expected, _ = load_photo(path, (28, 28), invert=False, fit="stretch")
    assert forced["inverted"] is False
    np.testing.assert_array_equal(unpack(forced["pixels"]), ToTensor()(expected[None]))


# -- refusals ------------------------------------------------------------------------------------------------------


def raw_get(app, raw_path: bytes):
    """A GET whose path reaches the app exactly as given (no client-side normalisation of '..')."""
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": raw_path.decode("latin-1"), "raw_path": raw_path, "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


@pytest.mark.parametrize("path", [b"/static/../../../../etc/passwd", b"/static/../explorer.py", b"/static//etc/passwd",
                                  b"/static/./index.html", b"/static/..%2f..%2fexplorer.py", b"/static/nothing.js",
                                  b"/static/", b"/static/%2e%2e/explorer.py"])
def test_static_paths_outside_the_folder_are_refused(app, path):
    status, body = raw_get(app, path)
    assert status == 404 and set(json.loads(body)) == {"error"}


def test_static_files_and_traversal_over_http(client, one_line_error):
    from numcnn.explore.server import STATIC, static_file

    assert static_file("index.html") == STATIC / "index.html"
    assert static_file("../explorer.py") is None and static_file(str(STATIC / "index.html")) is None
    page = client.get("/")
    assert page.status_code == 200 and page.content == (STATIC / "index.html").read_bytes()
    one_line_error(client.get("/static/%2e%2e/%2e%2e/cli/main.py"), 404)
    one_line_error(client.get("/static/..%2F..%2Fexplorer.py"), 404)
    one_line_error(client.get("/nothing"), 404)
    one_line_error(client.get("/api/forward"), 405)


@pytest.mark.parametrize("endpoint, body, status, words", [
    ("forward", b"{not json", 400, "not valid JSON"),
    ("forward", b"[1, 2]", 400, "JSON object"),
    ("forward", b'{"inputs": {"test": 1}}', 400, "'input'"),
    ("forward", b'{"input": {"test": 60}}', 400, "between 0 and 59"),
    ("forward", b'{"input": {"test": -1}}', 400, "between 0 and 59"),
    ("forward", b'{"input": {"test": true}}', 400, "integer"),
    ("forward", b'{"input": {"test": 1, "pixels": 2}}', 400, "input must be"),
    ("forward", b'{"input": {"pixels": {"dtype": "float64", "shape": [1], "b64": ""}}}', 400, "dtype"),
    ("forward", b'{"input": {"pixels": {"dtype": "float32", "shape": [1, 28, 28], "b64": "AAAA"}}}', 400, "bytes"),
    ("forward", b'{"input": {"pixels": {"dtype": "float32", "shape": [1], "b64": "!!"}}}', 400, "base64"),
    ("explain", b'{"input": {"test": 1}, "layer": "nope", "channel": 0, "y": 0, "x": 0}', 404, "no layer"),
    ("explain", b'{"input": {"test": 1}, "layer": "fc", "channel": 0, "y": 0, "x": 0}', 400, "no pixel"),
    ("explain", b'{"input": {"test": 1}, "layer": "layer1.0", "channel": 16, "y": 0, "x": 0}', 400, "channel"),
    ("explain", b'{"input": {"test": 1}, "layer": "layer1.0", "channel": 0, "y": 28, "x": 0}', 400, "y must"),
    ("explain", b'{"input": {"test": 1}, "layer": "layer2.3", "channel": 0, "y": 0, "x": 7}', 400, "x must"),
    ("explain", b'{"input": {"test": 1}, "layer": 3, "channel": 0, "y": 0, "x": 0}', 400, "string"),
    ("saliency", b'{"input": {"test": 1}, "class": 10}', 400, "class must"),
    ("saliency", b'{"input": {"test": 1}, "class": "3"}', 400, "integer"),
])
def test_bad_requests(client, one_line_error, endpoint, body, status, words):
    response = client.post(f"/api/{endpoint}", content=body, headers={"content-type": "application/json"})
    assert words in one_line_error(response, status)


def test_bad_pixels(client, one_line_error):
    for pixels, words in ((np.zeros((1, 28, 27), np.float32), "shape [1, 28, 28]"),
                          (np.full((1, 28, 28), 1.5, np.float32), "[0, 1]"),
                          (np.full((1, 28, 28), np.nan, np.float32), "finite")):
        response = client.post("/api/forward", json={"input": {"pixels": pack(pixels)}})
        assert words in one_line_error(response, 400)
    big = b'{"input": "' + b"x" * (5 * 2**20) + b'"}'
    one_line_error(client.post("/api/forward", content=big), 413)
    bad = client.get("/api/examples?label=10")
    assert "between 0 and 9" in one_line_error(bad, 400)
    assert "one of" in one_line_error(client.get("/api/examples?label=1&misclassified=1"), 400)
    assert "integer" in one_line_error(client.get("/api/examples?label=x"), 400)


def test_bad_uploads(client, one_line_error, tmp_path):
    from PIL import Image

    huge = b"\x89PNG" + b"\0" * (11 * 2**20)
    assert "bytes" in one_line_error(client.post("/api/upload", files={"file": ("a.png", huge)}), 413)
    text = client.post("/api/upload", files={"file": ("a.png", b"just text, not an image")})
    assert "not an image" in one_line_error(text, 415)
    bomb = io.BytesIO()
    Image.new("1", (10000, 5000)).save(bomb, format="PNG")  # 50 megapixels in a few kilobytes
    assert len(bomb.getvalue()) < 100_000
    assert "pixels" in one_line_error(client.post("/api/upload", files={"file": ("b.png", bomb.getvalue())}), 413)
    assert "'file'" in one_line_error(client.post("/api/upload", data={"other": "x"},
                                                  files={"x": ("a.png", b"1")}), 400)
    assert "multipart" in one_line_error(client.post("/api/upload", json={"file": 1}), 415)
    png = io.BytesIO()
    Image.new("L", (30, 30), 255).save(png, format="PNG")
    assert "invert" in one_line_error(client.post("/api/upload", files={"file": ("w.png", png.getvalue())},
                                                  data={"invert": "maybe"}), 400)


def test_other_hosts_are_not_answered(app):
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://evil.example") as c:
        assert c.get("/api/run").status_code == 400
    with TestClient(app, base_url="http://localhost:8000") as c:
        assert c.get("/api/run").status_code == 200


def test_without_test_images_drawing_still_works(trained_run, tmp_path, one_line_error):
    from starlette.testclient import TestClient

    from numcnn.explore import create_app

    app = create_app(trained_run, data_dir=tmp_path / "no-such-folder")
    with TestClient(app, base_url="http://127.0.0.1") as c:
        run = c.get("/api/run").json()
        assert run["test_images"] == 0 and "no-such-folder" in run["test_error"] and "--data-dir" in run["test_error"]
        assert c.get("/api/metrics").json()["confusion"] is None
        assert "no test images" in one_line_error(c.post("/api/forward", json={"input": {"test": 0}}), 404)
        one_line_error(c.get("/api/examples?label=1"), 404)
        pixels = np.zeros((1, 28, 28), np.float32)
        assert len(c.post("/api/forward", json={"input": {"pixels": pack(pixels)}}).json()["probabilities"]) == 10


def test_requests_at_once_get_their_own_answers(explorer):
    """Several tabs at once: answers computed in 8 threads equal the same answers computed one by one (the hooks
    record per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(explorer.forward, {"input": {"test": i}}) for i in range(12)]
    jobs += [(explorer.explain, {"input": {"test": i}, "layer": "layer2.0", "channel": i, "y": i, "x": 13 - i})
             for i in range(12)]
    jobs += [(explorer.saliency, {"input": {"test": i}, "class": i % 10}) for i in range(12)]
    alone = [fn(body) for fn, body in jobs]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda job: job[0](job[1]), jobs * 2))
    assert together == alone * 2


def test_a_checkpoint_or_the_weights_file_serve_the_same_model(trained_run, explorer):
    from numcnn.explore import Explorer

    expected = explorer.forward({"input": {"test": 8}})["probabilities"]
    for path in (trained_run / "checkpoint", trained_run / "model.safetensors"):
        other = Explorer.open(path)
        assert other.source == str(path) and other.run_folder == trained_run and len(other.test) == 60
        assert other.forward({"input": {"test": 8}})["probabilities"] == expected
