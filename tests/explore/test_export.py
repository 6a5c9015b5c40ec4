"""``export_site``: the static site's data files hold the live API's answers; the folder rules (never write into a
folder numcnn did not write, never delete)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from numcnn.explore import ExploreError, export_site
from numcnn.explore.export import MARKER


def read_answers(folder) -> dict:
    """key -> answer of every data/*.js file (each is one call window.numcnnStatic(key, answer);)."""
    answers = {}
    for path in sorted((folder / "data").glob("*.js")):
        m = re.fullmatch(r'window\.numcnnStatic\(("[^"]+"), (.*)\);\n', path.read_text(), re.S)
        assert m, path
        key = json.loads(m.group(1))
        assert path.name == key.replace("/", "-") + ".js"
        answers[key] = json.loads(m.group(2))
    return answers


@pytest.fixture(scope="module")
def site(tmp_path_factory, explorer):
    out = tmp_path_factory.mktemp("site") / "site"
    written = export_site(explorer, out, images=3)
    return out, written, read_answers(out)


def test_export_writes_the_live_answers(site, client, explorer):
    out, written, answers = site
    from numcnn.explore.server import STATIC

    run = answers["run"]
    chosen = run["static_images"]
    assert len(chosen) == 3 and run["mode"] == "static"
    assert {k: v for k, v in run.items() if k not in ("mode", "static_images")} == {
        k: v for k, v in client.get("/api/run").json().items() if k != "mode"}
    assert answers["metrics"] == client.get("/api/metrics").json()
    every = client.get("/api/examples?limit=500").json()["items"]
    assert answers["examples"] == {"total": 3, "items": [it for it in every if it["index"] in chosen]}
    preds = explorer.test.predictions(explorer.model, explorer.config["normalization"])
    assert any(preds[i] != explorer.test.labels[i] for i in chosen)  # a misclassified image is among them
    for i in chosen:
        assert answers[f"forward/{i}"] == client.post("/api/forward", json={"input": {"test": i}}).json()
        for k in range(10):
            live = client.post("/api/saliency", json={"input": {"test": i}, "class": k}).json()
            assert answers[f"saliency/{i}/{k}"] == live
    assert set(answers) == {"run", "metrics", "examples"} | {f"forward/{i}" for i in chosen} | {
        f"explain/{i}" for i in chosen} | {f"saliency/{i}/{k}" for i in chosen for k in range(10)}
    assert (out / "index.html").read_bytes() == (STATIC / "index.html").read_bytes()
    for path in STATIC.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert (out / "static" / path.relative_to(STATIC)).read_bytes() == path.read_bytes()
    assert json.loads((out / MARKER).read_text())["format"] == "numcnn-explore-site/1"
    assert sorted(written) == sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                                     if p.is_file() and p.name != MARKER)


def test_explain_data_reproduce_the_live_explanations(site, client, unpack):
    _, _, answers = site
    i = answers["run"]["static_images"][1]
    stored = answers[f"explain/{i}"]
    assert stored["tolerance"] == 1e-4 and set(stored["layers"]) == {
        "layer1.0", "layer1.1", "layer1.3", "layer2.0", "layer2.1", "layer2.3"}
    conv = stored["layers"]["layer2.0"]
    x, w, b = (unpack(conv[k]).astype(np.float64) for k in ("input", "weight", "bias"))
    assert conv["kind"] == "conv" and conv["padding"] == [[2, 2], [2, 2]] and conv["stride"] == [1, 1]
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    for c, y, xx in [(0, 0, 0), (31, 13, 13), (9, 6, 1)]:
        live = client.post("/api/explain", json={"input": {"test": i}, "layer": "layer2.0", "channel": c, "y": y,
                                                 "x": xx}).json()
        by_hand = float((xp[:, y:y + 5, xx:xx + 5] * w[c]).sum() + b[c])
        assert by_hand == pytest.approx(live["result"], rel=1e-12, abs=1e-12)
    bn = stored["layers"]["layer1.1"]
    value = float(unpack(bn["input"])[5, 3, 4])
    live = client.post("/api/explain", json={"input": {"test": i}, "layer": "layer1.1", "channel": 5, "y": 3,
                                             "x": 4}).json()
    by_hand = (value - bn["mean"][5]) / np.sqrt(bn["var"][5] + bn["eps"]) * bn["gamma"][5] + bn["beta"][5]
    assert by_hand == pytest.approx(live["result"], rel=1e-12)
    pool = stored["layers"]["layer1.3"]
    assert pool["kind"] == "pool" and pool["type"] == "MaxPool2d" and pool["kernel_size"] == [2, 2]


def test_export_refuses_a_foreign_folder_and_never_deletes(tmp_path, explorer, site):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my notes")
    with pytest.raises(ExploreError, match="not empty and was not written by"):
        export_site(explorer, foreign, images=1)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and (foreign / "notes.txt").read_text() == "my notes"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExploreError, match="not a folder"):
        export_site(explorer, tmp_path / "file", images=1)
    again = tmp_path / "again"
    export_site(explorer, again, images=2)
    (again / "data" / "extra.txt").write_text("kept")
    export_site(explorer, again, images=1)  # an earlier export: written over, nothing deleted
    assert (again / "data" / "extra.txt").read_text() == "kept"
    assert len(read_answers(again)["run"]["static_images"]) == 1


def test_chosen_images_show_every_class_and_some_mistakes():
    from numcnn.explore.export import choose_images

    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 3])
    preds = np.array([0, 2, 2, 1, 1, 2, 0, 0, 2, 3])
    assert choose_images(labels, preds, 4) == [0, 1, 2, 9]  # a mistake (1), then the first of each class
    assert choose_images(labels, preds, 8) == [0, 1, 2, 3, 4, 5, 6, 9]
    assert choose_images(labels, preds, 50) == list(range(10))
