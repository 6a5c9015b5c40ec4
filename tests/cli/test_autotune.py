"""numcnn train --autotune: recorded in config.json, the choices saved in checkpoint/ (state.json's "runtime"),
--resume reuses them bit for bit. Timings are faked (kernels.conv.autotune._time_candidate patched) so that autotune
picks "rowshift" where the fixed rule picks "im2col" for simplecnn's 1 -> 10 3x3 conv: the tests can tell which rule
ran. Every test runs inside ``runtime.scoped(autotune=False, algorithms={})``: nothing it sets leaks into other
tests."""

from __future__ import annotations

import json

import numpy as np

import numcnn
from autotune_helpers import fresh_process, fresh_runtime, prefer  # noqa: F401 - fresh_runtime: autouse
from numcnn.cli import runs
from numcnn.kernels import conv as K
from numcnn.kernels.conv import autotune
from numcnn.kernels.runtime import runtime

COMMON = ["--model", "simplecnn", "--data-dir", None, "--limit", 40, "--batch-size", 12, "--epochs", 2,
          "--scheduler", "none", "--quiet"]


def args(data_dir, *extra):
    a = list(COMMON)
    a[a.index(None)] = data_dir
    return ["train", *a, *extra]


def weights(path):
    return {k: v.numpy() for k, v in numcnn.load(path).items()}


def test_autotune_is_saved_in_the_checkpoint_and_resume_is_bit_identical(cli, data_dir, tmp_path, monkeypatch):
    prefer(monkeypatch, "rowshift")
    r = cli(*args(data_dir, "--autotune", "--out", tmp_path / "straight"))
    assert r.rc == 0, r.err
    reference = weights(tmp_path / "straight" / "model.safetensors")
    assert json.loads((tmp_path / "straight" / "config.json").read_text())["autotune"] is True
    state = json.loads((tmp_path / "straight" / "checkpoint" / "state.json").read_text())
    assert "conv_algorithms" not in state and "conv_autotune" not in state
    table = state["runtime"]["algorithms"]
    assert state["runtime"]["autotune"] is True and state["runtime"]["memory_budget"] == runtime.memory_budget
    # 40 training images in batches of 12 (the last of 4), 4 validation images: every key rowshift
    assert table == {"x=12x1x28x28 w=10x1x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 train": "rowshift",
                     "x=4x1x28x28 w=10x1x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 train": "rowshift",
                     "x=4x1x28x28 w=10x1x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 infer": "rowshift"}
    assert K.choose(K.ConvGeometry.of((12, 1, 28, 28), (10, 1, 3, 3), (1, 1), ((1, 1), (1, 1))), "forward") == "im2col"

    # interrupted after epoch 1, then resumed by a fresh process (empty table, autotune off, and no timing allowed)
    fresh_process()
    original = runs.MetricsWriter.on_epoch_end

    def interrupt_after_epoch_1(self, run, record):
        original(self, run, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.MetricsWriter, "on_epoch_end", interrupt_after_epoch_1)
    out = tmp_path / "interrupted"
    assert cli(*args(data_dir, "--autotune", "--out", out)).rc == 130
    monkeypatch.setattr(runs.MetricsWriter, "on_epoch_end", original)
    fresh_process()
    measured = []

    def measure(geo, dtype, backward):
        measured.append((geo.x_shape, backward))
        return {"im2col": 1.0, "rowshift": 2.0}  # were the table not restored, autotune would now pick im2col

    monkeypatch.setattr(autotune, "measure", measure)
    numcnn.manual_seed(12345)
    r = cli("train", "--out", out, "--resume", "--quiet")  # no --autotune: the run keeps its setting
    assert r.rc == 0, r.err
    assert runtime.autotune
    # only the test set (60 images, evaluated once after training) was new to the restored table
    assert measured == [((60, 1, 28, 28), False)]
    assert runtime.algorithms == {
        **table, "x=60x1x28x28 w=10x1x3x3 s=1x1 p=1,1,1,1 d=1x1 g=1 float32 infer": "im2col"}
    got = weights(out / "model.safetensors")
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


def test_help_and_refusing_autotune_on_resume_of_a_run_without_it(cli, data_dir, tmp_path):
    r = cli("train", "--help")
    assert r.rc == 0
    text = " ".join(r.out.split())
    assert "--autotune" in text and "saved in the checkpoints" in text and "--resume reuses them" in text
    out = tmp_path / "plain"
    assert cli(*args(data_dir, "--epochs", 1, "--out", out)).rc == 0
    assert json.loads((out / "config.json").read_text())["autotune"] is False
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["runtime"]["autotune"] is False
    r = cli("train", "--out", out, "--resume", "--autotune", "--epochs", 2)
    assert r.rc == 2 and "--autotune" in r.err and "without it" in r.err
    assert len(r.err.splitlines()) == 1 and not runtime.autotune
