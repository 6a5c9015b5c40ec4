"""numcnn train: the run folder, the last line, the split and normalisation, refusal, --force, --resume."""

import csv
import json

import numpy as np
import pytest

import numcnn
import numcnn.models
from numcnn.cli import recipe, runs
from numcnn.data import FashionMNIST, read_idx

IMAGE_SIZE = 28


def train_images(data_dir):
    return read_idx(data_dir / "train-images-idx3-ubyte.gz"), read_idx(data_dir / "train-labels-idx1-ubyte.gz")


def weights(path):
    return {k: v.numpy() for k, v in numcnn.load(path).items()}


def test_train_writes_the_run_folder(cli, data_dir, tmp_path, parse_accuracy):
    out = tmp_path / "run"
    r = cli("train", "--data-dir", data_dir, "--limit", 100, "--epochs", 2, "--out", out)
    assert r.rc == 0, r.err
    acc = parse_accuracy(r.last)
    kernels = [line for line in r.out.splitlines() if line.startswith("kernels: ")]
    assert kernels == [f"kernels: {numcnn.runtime.backend}"
                       + (" (compiled by Numba on first use)" if numcnn.runtime.backend == "numba" else "")
                       + f", {numcnn.runtime.threads} thread{'s' if numcnn.runtime.threads > 1 else ''}"]

    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "numcnn-run/1" and config["numcnn_version"] == numcnn.__version__
    assert config["model"] == {"name": "convnet", "in_channels": 1, "num_classes": 10, "options": {}}
    assert config["dataset"]["name"] == "fashion-mnist" and config["dataset"]["classes"] == FashionMNIST.classes
    assert config["dataset"]["root"] == str(data_dir.resolve())
    assert config["seed"] == 0
    assert config["recipe"] == {**numcnn.models.recipe("convnet"), "epochs": 2}

    # the split: a tenth of --limit held out, chosen by the seed's permutation; statistics of the training part only
    x, _ = train_images(data_dir)
    perm = np.random.default_rng(0).permutation(len(x))
    assert (config["dataset"]["val_images"], config["dataset"]["train_images"]) == (10, 100)
    train_px = x[perm[10:110]].astype(np.float64) / 255
    assert config["normalization"]["mean"] == pytest.approx([train_px.mean()], rel=1e-6)
    assert config["normalization"]["std"] == pytest.approx([train_px.std()], rel=1e-6)

    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] == pytest.approx(acc, abs=5e-5) and metrics["test"]["images"] == 60
    assert [rec["train_loss"] for rec in metrics["epochs"]] == pytest.approx([float(row["train_loss"]) for row in rows])

    # model.safetensors loads strictly into the model config.json names, and reproduces the printed accuracy by hand
    model = numcnn.models.get("convnet")
    model.load_state_dict(numcnn.load(out / "model.safetensors"))
    xt, yt = read_idx(data_dir / "t10k-images-idx3-ubyte.gz"), read_idx(data_dir / "t10k-labels-idx1-ubyte.gz")
    mean, std = config["normalization"]["mean"][0], config["normalization"]["std"][0]
    xt = ((xt[:, None].astype(np.float32) / np.float32(255)) - np.float32(mean)) / np.float32(std)
    model.eval()
    with numcnn.no_grad():
        pred = model(numcnn.tensor(xt)).numpy().argmax(axis=1)
    assert round(float((pred == yt).mean()), 4) == acc

    # ... and through numcnn evaluate
    r2 = cli("evaluate", out)
    assert r2.rc == 0, r2.err
    assert parse_accuracy(r2.last) == acc

    from PIL import Image

    with Image.open(out / "curves.png") as im:
        assert im.format == "PNG" and im.size == (1000, 400)  # 10 x 4 inches at 100 dpi
    assert (out / "checkpoint" / "state.json").is_file()


def test_default_folder_quiet_refusal_and_force(cli, data_dir, tmp_path, monkeypatch, parse_accuracy):
    monkeypatch.chdir(tmp_path)
    argv = ["train", "--model", "shallow", "--data-dir", data_dir, "--limit", 40, "--epochs", 1, "--quiet"]
    r = cli(*argv)
    assert r.rc == 0, r.err
    assert len(r.lines) == 1
    parse_accuracy(r.last)
    run = tmp_path / "runs" / "shallow-fashion-mnist"
    assert json.loads((run / "config.json").read_text())["recipe"]["loss"] == "mse"
    before = (run / "model.safetensors").read_bytes()

    r = cli(*argv)
    assert r.rc == 2 and r.out == ""
    assert len(r.err.splitlines()) == 1 and "--resume" in r.err and "--force" in r.err
    assert (run / "model.safetensors").read_bytes() == before

    (run / "notes.txt").write_text("mine")
    r = cli(*argv, "--force", "--seed", 1)  # --force deletes only numcnn's files: with the user's beside them, none
    assert r.rc == 2 and len(r.err.splitlines()) == 1 and "(notes.txt)" in r.err, r.err
    assert (run / "notes.txt").read_text() == "mine" and (run / "model.safetensors").read_bytes() == before
    (run / "notes.txt").unlink()
    r = cli(*argv, "--force", "--seed", 1)
    assert r.rc == 0, r.err
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    assert (run / "model.safetensors").read_bytes() != before


def test_resume_after_an_interrupt_is_bit_identical(cli, data_dir, tmp_path, monkeypatch, parse_accuracy):
    # simplecnn has dropout (global RNG); --augment draws crops and flips (loader RNG); onecycle steps per batch
    args = ["train", "--model", "simplecnn", "--scheduler", "onecycle", "--augment", "--data-dir", data_dir,
            "--limit", 80, "--batch-size", 32, "--epochs", 3, "--quiet", "--seed", 7]
    r = cli(*args, "--out", tmp_path / "straight")
    assert r.rc == 0, r.err
    reference, ref_acc = weights(tmp_path / "straight" / "model.safetensors"), parse_accuracy(r.last)

    original = runs.MetricsWriter.on_epoch_end

    def interrupt_after_epoch_2(self, run, record):
        original(self, run, record)
        if run.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs.MetricsWriter, "on_epoch_end", interrupt_after_epoch_2)
    out = tmp_path / "interrupted"
    r = cli(*args, "--out", out)
    assert r.rc == 130 and "--resume" in r.err
    assert not (out / "model.safetensors").exists()
    monkeypatch.setattr(runs.MetricsWriter, "on_epoch_end", original)
    # an unfinished run still evaluates, from its checkpoint: the validation accuracy of its last epoch
    r = cli("evaluate", out, "--split", "val", "--out", tmp_path)
    assert r.rc == 0 and "checkpoint of epoch 2" in r.out, r.err
    epoch2 = json.loads((out / "metrics.json").read_text())["epochs"][-1]
    assert epoch2["epoch"] == 2 and parse_accuracy(r.last, "val") == round(epoch2["val_accuracy"], 4)

    numcnn.manual_seed(12345)  # a fresh process would start from another global state: the checkpoint restores it
    r = cli("train", "--out", out, "--resume", "--quiet")
    assert r.rc == 0, r.err
    got = weights(out / "model.safetensors")
    assert got.keys() == reference.keys()
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)
    assert parse_accuracy(r.last) == ref_acc
    with open(out / "metrics.csv") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2, 3]


def test_resume_extends_a_constant_schedule_bit_identically(cli, data_dir, tmp_path):
    common = ["--model", "simplecnn", "--scheduler", "none", "--data-dir", data_dir, "--limit", 40, "--quiet"]
    assert cli("train", *common, "--epochs", 2, "--out", tmp_path / "a").rc == 0
    assert cli("train", *common, "--epochs", 1, "--out", tmp_path / "b").rc == 0
    r = cli("train", "--out", tmp_path / "b", "--resume", "--epochs", 2, "--quiet")
    assert r.rc == 0, r.err
    a, b = weights(tmp_path / "a" / "model.safetensors"), weights(tmp_path / "b" / "model.safetensors")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["recipe"]["epochs"] == 2


def test_resume_refusals(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--model", "shallow", "--data-dir", data_dir, "--limit", 20, "--epochs", 1, "--quiet",
               "--scheduler", "onecycle", "--out", out).rc == 0
    cases = [
        (["--epochs", 3], "onecycle schedule was planned for 1 epochs"),
        (["--lr", 0.5], "differs from the run's"),
        (["--model", "convnet"], "--model convnet differs"),
    ]
    for extra, message in cases:
        r = cli("train", "--out", out, "--resume", *extra)
        assert r.rc == 2 and message in r.err, (extra, r.err)
        assert len(r.err.splitlines()) == 1 and "Traceback" not in r.err
    r = cli("train", "--out", tmp_path / "nothing", "--resume")
    assert r.rc == 2 and "no such folder" in r.err


def test_mnist_augment_crops_but_never_flips():
    config = {"dataset": {"name": "mnist", "image_shape": [1, 28, 28]},
              "normalization": {"mean": [0.0], "std": [1.0]}}
    kinds = [type(t).__name__ for t in recipe.train_transform(config, augment=True).transforms]
    assert kinds == ["RandomCrop", "Normalize"]
    config["dataset"]["name"] = "fashion-mnist"
    t = recipe.train_transform(config, augment=True)
    assert [type(s).__name__ for s in t.transforms] == ["RandomCrop", "RandomHorizontalFlip", "Normalize"]
    assert t.transforms[0].padding == (2, 2, 2, 2) and t.transforms[0].size == (IMAGE_SIZE, IMAGE_SIZE)


def test_flags_override_the_recipe():
    class Args:
        optimizer = momentum = lr = scheduler = epochs = batch_size = weight_decay = augment = None

    base = numcnn.models.recipe("resnet")
    a = Args()
    assert recipe.resolve_recipe(base, a) == base
    a.optimizer, a.lr, a.scheduler, a.epochs = "adam", 0.01, "cosine", 4
    r = recipe.resolve_recipe(base, a)
    assert (r["optimizer"], r["optimizer_kwargs"], r["lr"], r["scheduler"], r["max_lr"], r["epochs"]) == \
        ("adam", {}, 0.01, "cosine", None, 4)
    b = Args()
    b.lr = 0.05  # with the recipe's onecycle, --lr is the peak
    r = recipe.resolve_recipe(base, b)
    assert (r["lr"], r["max_lr"], r["optimizer_kwargs"]) == (0.05, 0.05, {"momentum": 0.9, "nesterov": True})


def test_detect_anomaly_names_op_module_epoch_and_batch(cli, data_dir, tmp_path):
    # a learning rate of 1e30 blows the weights up after the first step: the next forward makes Inf/NaN
    r = cli("train", "--data-dir", data_dir, "--limit", "120", "--epochs", "1", "--optimizer", "sgd", "--lr", "1e30",
            "--scheduler", "none", "--detect-anomaly", "--out", tmp_path / "run")
    assert r.rc == 1
    assert "epoch 1, batch 2" in r.err and "in module '" in r.err
    plain = cli("train", "--data-dir", data_dir, "--limit", "120", "--epochs", "1", "--optimizer", "sgd", "--lr",
                "1e30", "--scheduler", "none", "--out", tmp_path / "run2")
    assert plain.rc == 1 and "epoch 1, batch 2" in plain.err and "loss became" in plain.err
