"""Real MPI processes (mpirun on 127.0.0.1, see conftest): N ranks give one process's numbers, resume works on
another world size, a rank that dies stops the job without a hang, only rank 0 writes. Skipped without MPI."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from numcnn.cli.main import main
from numcnn.data import write_idx
from numcnn.distributed import SelfCommunicator
from numcnn.serialization import load
from numcnn.training import read_checkpoint

# float32 summation order: the ranks add up the gradient in other groupings than one process does
TOL = dict(rtol=1e-4, atol=3e-5)


def _reference(worker, **kw):
    """One process, the global batch, the same model, data and routine as the ranks."""
    model, opt, history = worker.train(SelfCommunicator(), **kw)
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}, opt, history


def _assert_close(got, ref, moved_from=None):
    assert sorted(got) == sorted(ref)
    for k in ref:
        np.testing.assert_allclose(np.asarray(got[k]), ref[k], **TOL, err_msg=k)
    if moved_from is not None:  # the comparison means something only if training moved the weights
        assert max(np.abs(ref[k] - moved_from[k]).max() for k in ref if ref[k].dtype.kind == "f") > 0.05


@pytest.mark.parametrize("ranks", [2, 3])
def test_n_ranks_with_sync_bn_equal_one_process_with_n_times_the_batch(mpirun, worker, tmp_path, ranks):
    args = dict(kind="syncbn", optimizer="sgd", global_batch=12, epochs=2)  # 12 steps of 12 // ranks per rank
    out = tmp_path / "weights.npz"
    r = mpirun(ranks, "train", json.dumps({**args, "out": str(out)}))
    assert r.returncode == 0, r.stderr
    assert sorted(re.findall(r"rank (\d+): done", r.stdout)) == [str(i) for i in range(ranks)]
    ref, _, history = _reference(worker, **args)
    init = {k: v.numpy() for k, v in worker.build_model("syncbn", 100).state_dict().items()}
    _assert_close(dict(np.load(out)), ref, moved_from=init)
    records = json.loads(out.with_suffix(".npz.json").read_text())
    assert len(records) == 2
    for got, want in zip(records, history.records):  # metrics reduced over the ranks = one process's
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
        assert got["train_accuracy"] == pytest.approx(want["train_accuracy"], abs=1e-12)
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5)
        assert got["val_accuracy"] == pytest.approx(want["val_accuracy"], abs=1e-12)


def test_resume_on_another_world_size(mpirun, worker, tmp_path):
    """Epoch 1 on 2 ranks (batch 6 each), epoch 2 resumed on 3 ranks (batch 4 each): Adam's state, the scheduler
    and the epoch's order carry over, and the result is one process's two epochs with batch 12 (no BatchNorm)."""
    ckpt = tmp_path / "ckpt"
    common = dict(kind="nobn", optimizer="adam", global_batch=12, ckpt=str(ckpt))
    r = mpirun(2, "train", json.dumps({**common, "epochs": 1, "out": str(tmp_path / "first.npz")}))
    assert r.returncode == 0, r.stderr
    assert read_checkpoint(ckpt)["epoch"] == 1
    r = mpirun(3, "train", json.dumps({**common, "epochs": 2, "resume": True, "out": str(tmp_path / "w.npz")}))
    assert r.returncode == 0, r.stderr
    ref, ref_opt, history = _reference(worker, kind="nobn", optimizer="adam", global_batch=12, epochs=2)
    _assert_close(dict(np.load(tmp_path / "w.npz")), ref)
    state = read_checkpoint(ckpt)
    assert state["epoch"] == 2 and len(state["history"]["records"]) == 2
    _assert_close({k: v.numpy() for k, v in state["model"].items()}, ref)
    ref_state = ref_opt.state_dict()["state"]
    for key, arr in state["optimizer_arrays"].items():  # Adam's moments, e.g. "0.exp_avg"
        idx, name = key.split(".", 1)
        np.testing.assert_allclose(arr.numpy(), ref_state[int(idx)][name], rtol=1e-3, atol=1e-6, err_msg=key)
    assert state["scheduler"]["last_epoch"] == 2


@pytest.mark.parametrize("mode", ["raise", "kill", "hang"])
def test_a_rank_that_dies_stops_the_others(mpirun, worker, tmp_path, mode):
    """Rank 1 of 3 fails at the 2nd step of epoch 2: the job ends with an error naming it, well within the test's
    limit, and the checkpoint of epoch 1 is whole (it loads and equals one process's first epoch)."""
    ckpt = tmp_path / "ckpt"
    t0 = time.monotonic()
    r = mpirun(3, "die", json.dumps({"mode": mode, "at_call": 8, "ckpt": str(ckpt),
                                     "timeout": 4 if mode == "hang" else None}), timeout=50)
    elapsed = time.monotonic() - t0
    text = r.stdout + r.stderr
    assert r.returncode != 0
    assert "which it should not have" not in text
    if mode == "raise":
        assert "rank 1 of 3 stopped on RuntimeError: rank 1 fails on purpose; aborting all ranks" in text
    elif mode == "kill":
        assert re.search(r"rank 1 .*(signal 9|Killed)", text, re.S), text
    else:
        assert re.search(r"rank [02] of 3: .* did not complete within 4 s: another rank has died or is stuck", text)
        assert elapsed < 40
    state = read_checkpoint(ckpt)
    assert state["epoch"] == 1
    ref, _, _ = _reference(worker, kind="syncbn", optimizer="sgd", global_batch=12, epochs=1)
    _assert_close({k: v.numpy() for k, v in state["model"].items()}, ref)


# -- the command line ----------------------------------------------------------------------------------------


@pytest.fixture
def mnist_dir(tmp_path_factory):
    """MNIST-layout IDX files: 150 training and 40 test images whose class is the place of a bright square."""
    folder = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 150), ("t10k", 40)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for k in range(10):
            r, c = divmod(k, 4)
            x[y == k, 3 + 8 * r : 9 + 8 * r, 2 + 6 * c : 8 + 6 * c] = 230
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


def test_cli_distributed_writes_on_rank_0_only_and_equals_one_process(mpirun, tmp_path, mnist_dir, capsys):
    argv = ["train", "--model", "convnet", "--dataset", "mnist", "--data-dir", str(mnist_dir), "--limit", "120",
            "--epochs", "2", "--batch-size", "20", "--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.01",
            "--scheduler", "none", "--no-augment", "--distributed", "--sync-bn"]
    runs = tmp_path / "runs"
    r = mpirun(2, "cli", json.dumps({"argv": [*argv, "--out", str(runs / "two")], "watch": str(tmp_path)}))
    assert r.returncode == 0, r.stderr
    writes = {int(m[0]): json.loads(m[1]) for m in re.findall(r"^WRITES (\d) (.*)$", r.stdout, re.M)}
    assert sorted(writes) == [0, 1]
    assert writes[1] == []  # rank 1 created, renamed, removed nothing in the run folder (or anywhere under tmp)
    assert any("model.safetensors" in p for _, p in writes[0]), writes[0]  # the hook does see rank 0's writes
    assert len(re.findall(r"^test accuracy: ", r.stdout, re.M)) == 1  # and only rank 0 prints
    assert "distributed: 2 ranks x batch 10 = global batch 20, SyncBatchNorm" in r.stdout

    assert main([*argv, "--out", str(runs / "one")]) == 0  # one process (a world of one), same flags
    one_out = capsys.readouterr().out
    assert "distributed: 1 rank x batch 20 = global batch 20, SyncBatchNorm (not started by mpirun: one process)" \
        in one_out
    two, one = load(runs / "two" / "model.safetensors"), load(runs / "one" / "model.safetensors")
    _assert_close({k: v.numpy() for k, v in two.items()}, {k: v.numpy() for k, v in one.items()})
    m2, m1 = (json.loads((runs / d / "metrics.json").read_text()) for d in ("two", "one"))
    for a, b in zip(m2["epochs"], m1["epochs"]):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert m2["test"]["images"] == m1["test"]["images"] == 40
    assert m2["test"]["loss"] == pytest.approx(m1["test"]["loss"], rel=1e-4)
    assert re.findall(r"test accuracy: .*", r.stdout) == re.findall(r"test accuracy: .*", one_out)
    config = json.loads((runs / "two" / "config.json").read_text())
    assert config["distributed"] == {"world_size": 2, "per_rank_batch": 10, "sync_bn": True}


def test_cli_refuses_mpi_ranks_without_distributed_and_sync_bn_alone(monkeypatch, capsys, tmp_path):
    """Without --distributed, N ranks would each train alone and overwrite one run folder: refused up front."""
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "numcnn train: error: started by an MPI launcher as 4 processes but without --distributed" in err
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    assert main(["train", "--sync-bn", "--out", str(tmp_path / "run")]) == 2
    assert "--sync-bn applies to --distributed training only" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
