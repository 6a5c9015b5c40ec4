"""numcnn.bench in its smoke mode: it runs end to end, times numcnn against PyTorch, and the outputs it timed
agree (naive vs im2col kernels, numcnn vs PyTorch layers, training losses and inference logits)."""

from __future__ import annotations

import json

import pytest

import numcnn
from numcnn import bench

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # One thread: the smoke run checks numbers, not speed, and a busy machine starves a second thread.
    status = bench.main(["--smoke", "--threads", "1", "--out", str(out), "--no-png", "--only", "layers", "train",
                         "inference"])
    return status, json.loads((out / "bench.json").read_text())


def test_smoke_run_succeeds_and_every_output_agrees(smoke):
    status, result = smoke
    assert status == 0 and result["failures"] == []
    rows = result["rows"]
    layers = [r for r in rows if r["section"] == "layer"]
    assert {r["op"] for r in layers} == {"forward", "grad-input", "grad-weight"}
    assert len([r for r in layers if r["op"] == "forward"]) == 7  # five convolutions, max-pool, BatchNorm
    for r in layers:
        assert r["err_vs_torch"] <= 1e-3, r
        if "naive_reduced" in r:
            assert r["naive_reduced"]["err_vs_fast"] <= 1e-4, r
    train = [r for r in rows if r["section"] == "train"]
    assert [r["name"] for r in train] == [f"{m} training step" for m in ("convnet", "lenet5", "resnet")]
    for r in train:
        assert r["same_weights"], r["name"]  # torch twin loaded numcnn's state_dict
        assert r["first_loss"]["numcnn"] == pytest.approx(r["first_loss"]["torch"], rel=1e-5, abs=1e-6)
    infer = [r for r in rows if r["section"] == "inference"]
    assert [r["shape"][0] for r in infer] == [4, 1]
    assert all(r["err_vs_torch"] <= 1e-4 for r in infer)


def test_reported_rates_and_ratios_follow_from_the_times(smoke):
    _, result = smoke
    gemm = result["meta"]["gemm"]
    assert gemm["numpy"] > 0 and gemm["n"] == 256
    for r in result["rows"]:
        ours, theirs = r["numcnn"], r["torch"]
        assert ours["reps"] >= 3 and ours["q1_ms"] <= ours["median_ms"] <= ours["q3_ms"]
        assert r["ratio"] == pytest.approx(ours["median_ms"] / theirs["median_ms"])
        if "flops" in r:
            assert ours["gflops"] == pytest.approx(r["flops"] / ours["median_ms"] / 1e6)
            assert ours["gemm_fraction"] == pytest.approx(ours["gflops"] / gemm["numpy"])
    meta = result["meta"]
    assert meta["torch_threads"] == meta["numcnn_threads"] == 1  # same thread count on both sides
    assert [b["num_threads"] for b in meta["blas"]] == [1] * len(meta["blas"])


def test_table_and_no_torch_mode(tmp_path, capsys):
    before = numcnn.get_num_threads()
    status = bench.main(["--smoke", "--threads", "1", "--no-torch", "--out", str(tmp_path), "--no-png", "--only",
                         "train", "memory"])
    assert numcnn.get_num_threads() == before  # --threads is undone on return
    printed = capsys.readouterr().out
    assert status == 0
    assert "no torch" in printed and "convnet training step" in printed and "peak RSS" in printed
    result = json.loads((tmp_path / "bench.json").read_text())
    rows = result["rows"]
    assert all("torch" not in r and "ratio" not in r for r in rows)
    mem = [r for r in rows if r["section"] == "memory"]
    assert [r["op"] for r in mem] == ["training memory above imports", "steady-state step"]
    m = mem[0]["numcnn"]
    assert m["peak_mb"] >= m["after_warmup_mb"] >= m["base_mb"] > 0
    assert m["total_mb"] == pytest.approx(m["peak_mb"] - m["base_mb"]) == mem[0]["numcnn"]["mb"]
    assert mem[1]["numcnn"]["mb"] == m["step_mb"] >= 0
