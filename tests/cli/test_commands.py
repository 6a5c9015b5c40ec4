"""numcnn evaluate / predict / summary / plot / --help, and the one-line errors (exit status 2)."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import numcnn
import numcnn.models
from numcnn.cli.main import main
from numcnn.data import FashionMNIST, read_idx
from numcnn.data.photo import load_photo

Image = pytest.importorskip("PIL.Image")


def assert_one_line_error(r, *fragments):
    assert r.rc == 2, (r.out, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    for f in fragments:
        assert f in r.err, r.err


# -- evaluate ----------------------------------------------------------------------------------------------------


def test_evaluate_run_checkpoint_and_file_agree_with_train(cli, trained_run, tmp_path, parse_accuracy, data_dir):
    run, acc = trained_run
    for target in (run, run / "checkpoint", run / "model.safetensors"):
        r = cli("evaluate", target, "--out", tmp_path / "eval")
        assert r.rc == 0, r.err
        assert parse_accuracy(r.last) == acc
    # the per-class table: one row per class name, counts summing to the test set, accuracies = correct / images
    rows = [line for line in r.lines if line.split("  ")[0].strip() in FashionMNIST.classes]
    assert len(rows) == 10
    labels = read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    images = [int(row.split()[-3]) for row in rows]
    correct = [int(row.split()[-2]) for row in rows]
    assert images == np.bincount(labels, minlength=10).tolist()
    assert round(sum(correct) / sum(images), 4) == acc
    with Image.open(tmp_path / "eval" / "confusion.png") as im:
        assert im.format == "PNG"


def test_evaluate_val_split_matches_the_last_epochs_validation(cli, trained_run, tmp_path, parse_accuracy):
    run, _ = trained_run
    r = cli("evaluate", run, "--split", "val", "--out", tmp_path)
    assert r.rc == 0, r.err
    last = json.loads((run / "metrics.json").read_text())["epochs"][-1]
    assert parse_accuracy(r.last, "val") == round(last["val_accuracy"], 4)
    assert "val split, 12 images" in r.out  # a tenth of --limit 120
    assert (tmp_path / "confusion-val.png").is_file()


# -- predict -----------------------------------------------------------------------------------------------------


def test_predict_top3_on_a_png(cli, trained_run, tmp_path):
    run, _ = trained_run
    # a dark square on a white page: dark-on-light, so it is inverted to match the dataset
    page = np.full((56, 56), 255, dtype=np.uint8)
    page[6:18, 4:16] = 0
    Image.fromarray(page).save(tmp_path / "page.png")
    r = cli("predict", run, tmp_path / "page.png")
    assert r.rc == 0, r.err
    assert r.lines[0] == f"{tmp_path / 'page.png'} (inverted: dark on a light background)"
    top = [(m.group(1).strip(), float(m.group(2))) for m in (re.fullmatch(r"  (.+?)\s+(\d\.\d{4})", s)
                                                              for s in r.lines[1:]) if m]
    assert len(top) == 3
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-4

    # reference: the same preprocessing written out by hand, the model run directly
    config = json.loads((run / "config.json").read_text())
    # the photo prepared as Fashion-MNIST was made (trim, fit the longer side, centre, pad; tests/data/test_photo.py
    # checks that preparation's geometry), then inverted
    prepared, inverted = load_photo(tmp_path / "page.png", fit="fashion-mnist")
    assert inverted
    small = prepared.astype(np.float32)
    x = (small / 255 - config["normalization"]["mean"][0]) / config["normalization"]["std"][0]
    model = numcnn.models.get("convnet")
    model.load_state_dict(numcnn.load(run / "model.safetensors"))
    model.eval()
    with numcnn.no_grad():
        logits = model(numcnn.tensor(x[None, None].astype(np.float32))).numpy()[0].astype(np.float64)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)[:3]
    assert [name for name, _ in top] == [FashionMNIST.classes[i] for i in order]
    assert probs == pytest.approx(p[order], abs=2e-4)


def test_predict_errors(cli, trained_run, tmp_path):
    run, _ = trained_run
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    assert_one_line_error(cli("predict", run, tmp_path / "broken.png"), "broken.png", "cannot read")
    assert_one_line_error(cli("predict", run, tmp_path / "missing.jpg"), "missing.jpg", "no such")
    assert_one_line_error(cli("predict", tmp_path, tmp_path / "broken.png"), "not a numcnn run folder")


# -- summary -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, name, options, channels", [
    ([], "convnet", {}, 1),
    (["--model", "lenet5", "-o", "batchnorm=true"], "lenet5", {"batchnorm": True}, 1),
    (["--model", "resnet", "--in-channels", "3", "-o", "blocks_per_stage=[1,1,1]"], "resnet",
     {"blocks_per_stage": [1, 1, 1]}, 3),
])
def test_summary_totals_are_the_librarys(cli, argv, name, options, channels):
    r = cli("summary", *argv)
    assert r.rc == 0, r.err
    s = numcnn.utils.summary(numcnn.models.get(name, in_channels=channels, **options), (channels, 28, 28),
                             print_fn=None)
    assert f"Total params: {s.total_params:,}" in r.lines
    assert f"Total MACs per image: {s.total_macs:,}" in r.lines
    assert f"Input shape: [1, {channels}, 28, 28]" in r.lines
    assert sum(1 for line in r.lines if re.search(r"\((Conv2d|Linear)\)", line)) == \
        sum(1 for layer in s.layers if layer.kind in ("Conv2d", "Linear"))


def test_summary_errors(cli):
    assert_one_line_error(cli("summary", "--model", "alexnet"), "unknown model 'alexnet'", "convnet")
    assert_one_line_error(cli("summary", "--model", "lenet5", "-o", "wings=2"), "wings", "batchnorm")
    assert_one_line_error(cli("summary", "-o", "nonsense"), "KEY=VALUE")


# -- plot --------------------------------------------------------------------------------------------------------


def test_plots(cli, trained_run, tmp_path):
    run, _ = trained_run
    r = cli("plot", "activations", "--out", tmp_path)
    assert r.rc == 0, r.err
    with Image.open(tmp_path / "activations.png") as im:
        assert im.format == "PNG" and im.size == (1200, 640)  # 3 x 2 panels of 4 x 3.2 inches at 100 dpi

    assert cli("plot", "filters", run, "--out", tmp_path).rc == 0
    with Image.open(tmp_path / "filters.png") as im:
        assert im.format == "PNG"

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "black.png")
    r = cli("plot", "feature-maps", run, "--image", tmp_path / "black.png", "--out", tmp_path / "maps")
    assert r.rc == 0, r.err
    # the input, then one file per convolution of convnet (layer1.0 and layer2.0)
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "feature-maps-00-input.png", "feature-maps-01-layer1.0.png", "feature-maps-02-layer2.0.png"]
    # without --image: the first test image of the run's dataset (found through the run's data folder)
    assert cli("plot", "feature-maps", run, "--out", tmp_path / "maps2").rc == 0
    assert len(list((tmp_path / "maps2").iterdir())) == 3
    assert_one_line_error(cli("plot", "filters", "--out", tmp_path), "needs a RUN")


# -- errors and help ---------------------------------------------------------------------------------------------


def test_usage_errors_are_one_line(cli, data_dir, tmp_path):
    common = ["--data-dir", data_dir, "--out", tmp_path / "x"]
    assert_one_line_error(cli("train", "--model", "alexnet", *common), "unknown model 'alexnet'", "resnet")
    assert_one_line_error(cli("train", "--dataset", "cifar10", *common), "unknown dataset 'cifar10'", "mnist")
    assert_one_line_error(cli("train", "--epochs", "0", *common), "--epochs", "positive integer")
    assert_one_line_error(cli("train", "--lr", "-1", *common), "--lr", "positive number")
    assert_one_line_error(cli("train", "--optimizer", "lbfgs", *common), "invalid choice")
    assert_one_line_error(cli("train", "--resume", "--force", *common), "not allowed with")
    assert_one_line_error(cli("train", "--optimizer", "adam", "--momentum", "0.9", *common), "--momentum")
    assert_one_line_error(cli("evaluate", tmp_path), "is not a numcnn run folder")
    assert_one_line_error(cli("evaluate", tmp_path / "nowhere"), "no such file or folder")
    assert not (tmp_path / "x").exists()


def test_missing_dataset_gives_the_data_layers_message(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("train", "--dataset", "mnist", "--data-dir", empty, "--out", tmp_path / "run")
    assert r.rc == 2 and "Traceback" not in r.err
    assert r.err.startswith("numcnn train: error: MNIST: could not find train-images-idx3-ubyte.gz")
    assert f"root: {empty}" in r.err and "--data-dir DIR" in r.err and "--download" in r.err
    assert not (tmp_path / "run").exists()


def test_help_is_accurate(cli):
    r = cli("--help")
    assert r.rc == 0
    for command in ("train", "evaluate", "predict", "summary", "plot"):
        assert command in r.out
    r = cli("train", "--help")
    assert r.rc == 0
    for flag in ("--model", "--dataset", "--data-dir", "--epochs", "--batch-size", "--optimizer", "--lr",
                 "--weight-decay", "--scheduler", "--augment", "--no-augment", "--seed", "--out", "--resume",
                 "--force", "--limit", "--quiet"):
        assert flag in r.out, flag
    for name in numcnn.models.names():  # the recipes' table
        r2 = numcnn.models.recipe(name)
        assert re.search(rf"^  {name} +{r2['optimizer']} lr {r2['lr']:g}", r.out, re.M), name
    for command in ("evaluate", "predict", "summary", "plot"):
        assert cli(command, "--help").rc == 0
    assert cli("--version").out.strip() == f"numcnn {numcnn.__version__}"


def test_python_dash_m_numcnn_help():
    r = subprocess.run([sys.executable, "-m", "numcnn", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: numcnn") and "evaluate" in r.stdout


def test_main_returns_2_without_a_command(capsys):
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out
