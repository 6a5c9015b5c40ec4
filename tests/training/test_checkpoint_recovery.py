"""A crash in the middle of a checkpoint swap (save_checkpoint writes ``.<name>.tmp`` and swaps it in by two renames)
is recovered: the old checkpoint left in ``.<name>.old`` is read, put back by recover_checkpoint and by the next
save_checkpoint, and never deleted before a new checkpoint is in place."""

import os
import shutil

import numpy as np
import pytest

import numcnn as nc
import numcnn.nn as nn
from numcnn.training import load_checkpoint, read_checkpoint, save_checkpoint
from numcnn.training.checkpoint import checkpoint_epoch, has_checkpoint, recover_checkpoint


def model(seed=0):
    nc.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def weights(m):
    return {k: v.numpy().copy() for k, v in m.state_dict().items()}


def crash_on_rename(monkeypatch, n: int):
    """The ``n``-th rename of a checkpoint folder (1: the old one moved aside, 2: the new one in place) raises, as a
    crash there would stop it (the renames of single files, by the atomic writes, are let through)."""
    calls = []
    real = os.replace

    def replace(src, dst):
        if os.path.isdir(src):
            calls.append((src, dst))
            if len(calls) == n:
                raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def test_a_crash_between_the_renames_keeps_the_old_checkpoint_and_is_recovered(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint"
    old, tmp = tmp_path / ".checkpoint.old", tmp_path / ".checkpoint.tmp"
    first = model(0)
    save_checkpoint(folder, model=first, epoch=1)
    with monkeypatch.context() as m:
        crash_on_rename(m, 2)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(folder, model=model(1), epoch=2)
    assert not folder.exists() and (old / "state.json").exists() and (tmp / "state.json").exists()
    assert has_checkpoint(folder) and checkpoint_epoch(folder) == 1 and read_checkpoint(folder)["epoch"] == 1

    done = recover_checkpoint(folder)
    assert len(done) == 2 and "put back the checkpoint of epoch 1" in done[0] and ".checkpoint.tmp" in done[1]
    assert (folder / "state.json").exists() and not old.exists() and not tmp.exists()
    restored = model(2)
    assert load_checkpoint(folder, model=restored)[0] == 1
    for k, v in weights(first).items():
        np.testing.assert_array_equal(weights(restored)[k], v)
    assert recover_checkpoint(folder) == []  # nothing left to do


def test_the_next_save_never_deletes_the_only_checkpoint_first(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, model=model(0), epoch=1)
    with monkeypatch.context() as m:
        crash_on_rename(m, 2)
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(folder, model=model(1), epoch=2)
    # the next save crashes too, as its new checkpoint is put in place: epoch 1 must survive it
    with monkeypatch.context() as m:
        crash_on_rename(m, 3)  # 1: old put back (recovery), 2: moved aside again, 3: the new one in place
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint(folder, model=model(1), epoch=2)
    assert checkpoint_epoch(folder) == 1 and read_checkpoint(folder)["epoch"] == 1
    save_checkpoint(folder, model=model(1), epoch=3)
    assert checkpoint_epoch(folder) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_leftover_old_beside_a_whole_checkpoint_is_deleted(tmp_path):
    folder = tmp_path / "checkpoint"
    save_checkpoint(folder, model=model(0), epoch=1)
    shutil.copytree(folder, tmp_path / ".checkpoint.old")
    assert recover_checkpoint(folder) == [f"{folder}: deleted the previous checkpoint .checkpoint.old a stopped run "
                                          "left beside it"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"] and checkpoint_epoch(folder) == 1


def test_no_checkpoint(tmp_path):
    folder = tmp_path / "checkpoint"
    assert recover_checkpoint(folder) == [] and not has_checkpoint(folder) and checkpoint_epoch(folder) is None
    with pytest.raises(FileNotFoundError):
        read_checkpoint(folder)
