"""Numerics in the commands: a run whose loss explodes without NaN ends with a warning and exit 1, a NaN stop
names the checkpoint it kept, weights holding NaN/Inf are warned about, and NumPy's raw RuntimeWarnings never show."""

import os
import subprocess
import sys
import warnings

import numpy as np

from numcnn.serialization import load, save
from numcnn.training.checkpoint import checkpoint_epoch

EXPLODE = ("--limit", 40, "--epochs", 2, "--lr", 1000, "--scheduler", "none")


def test_an_exploding_loss_warns_and_exits_1_without_raw_numpy_warnings(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = cli("train", "--data-dir", data_dir, *EXPLODE, "--out", out)
    assert r.rc == 1
    assert r.last.startswith("test accuracy: ")  # the README's last line, still
    assert "numcnn train: warning: epoch 1: val loss" in r.err  # the epoch, its loss and the starting loss
    assert "against a starting loss of 2.5" in r.err
    assert "warning: training diverged from epoch 1" in r.err and "holds epoch 2" in r.err
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert "RuntimeWarning" not in r.err


def test_no_runtime_warning_reaches_stderr_of_the_real_command(data_dir, tmp_path):
    argv = ["train", "--data-dir", data_dir, "--limit", 40, "--epochs", 5, "--optimizer", "sgd", "--lr", 3e7,
            "--scheduler", "none", "--quiet", "--out", tmp_path / "run"]
    p = subprocess.run([sys.executable, "-m", "numcnn", *map(str, argv)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONWARNINGS": "default"}, timeout=300)
    # val loss finite after epoch 1, NaN after 2 and 3, the loss NaN in epoch 4: the checkpoint kept is epoch 1's
    assert p.returncode == 1, p.stderr
    assert "the loss became nan at epoch 4, batch 1" in p.stderr
    assert "checkpoint holds epoch 1, the last whose validation loss was finite" in p.stderr
    assert checkpoint_epoch(tmp_path / "run" / "checkpoint") == 1
    assert "RuntimeWarning" not in p.stderr and "encountered in" not in p.stderr


def test_evaluate_and_predict_warn_about_nan_weights(cli, data_dir, tmp_path, parse_accuracy):
    out = tmp_path / "run"
    assert cli("train", "--data-dir", data_dir, "--limit", 40, "--epochs", 1, "--quiet", "--out", out).rc == 0
    r = cli("evaluate", out, "--data-dir", data_dir)
    assert r.rc == 0 and "NaN/Inf" not in r.err
    weights = {k: v.numpy().copy() for k, v in load(out / "model.safetensors").items()}
    name = next(k for k in weights if k.endswith("weight"))
    weights[name].flat[0] = np.nan
    save(weights, out / "model.safetensors")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = cli("evaluate", out, "--data-dir", data_dir)
    assert r.rc == 0 and parse_accuracy(r.last) is not None
    assert f"numcnn evaluate: warning: the weights of {out / 'model.safetensors'} hold NaN/Inf ({name}" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "blank.png")
    r = cli("predict", out, tmp_path / "blank.png")
    assert r.rc == 0 and "numcnn predict: warning: the weights of" in r.err and "hold NaN/Inf" in r.err
    assert len(r.err.strip().splitlines()) == 1
