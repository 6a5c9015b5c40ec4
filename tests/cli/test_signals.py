"""numcnn train stopped by SIGTERM or Ctrl-C, a crash in the middle of a checkpoint swap, and --data-dir (issue 15,
item 8): SIGTERM stops a run as Ctrl-C does (exit 143, the checkpoint's epoch, the command that continues it);
before the first checkpoint the message claims none; the next --resume puts a half-swapped checkpoint back; a
named data folder that is missing, or lacks the files, is an error and never a fallback to another copy."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from numcnn.cli import runs, stop
from numcnn.serialization import load
from numcnn.training import callbacks

TINY = ["--model", "shallow", "--limit", 40, "--quiet"]


def start(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "numcnn", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 300) -> str:
    """Read the process's stdout up to the first line starting with ``prefix``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
        if not line and proc.poll() is not None:
            pytest.fail(f"ended before printing {prefix!r}: rc {proc.returncode}, {proc.communicate()}")
    pytest.fail(f"no line starting with {prefix!r} in {timeout} s")


def terminate(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def epochs_of(out: Path) -> list[int]:
    return [e["epoch"] for e in json.loads((out / "metrics.json").read_text())["epochs"]]


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def stop_line(err: str) -> str:
    """numcnn train's one line in a subprocess's stderr (which may also hold, e.g., warnings of a library)."""
    lines = [line for line in err.splitlines() if line.startswith("numcnn train:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def run_hint(err: str) -> list[str]:
    """The ``numcnn train ... --resume ...`` command a message suggests, as argv for main()."""
    m = re.search(r"(numcnn train --out .*? --resume --epochs \d+)", err)
    assert m, err
    return shlex.split(m.group(1))[1:]


# -- SIGTERM, for real ---------------------------------------------------------------------------------------


def test_sigterm_after_an_epoch_saves_says_so_exits_143_and_resume_finishes(data_dir, tmp_path, cli):
    out = tmp_path / "run"
    # 216 images one by one: each epoch takes a while, so the signal lands in the middle of the run
    proc = start("train", "--model", "shallow", "--batch-size", 1, "--epochs", 30, "--data-dir", data_dir,
                 "--out", out)
    wait_for_line(proc, "epoch 1/30:")
    rc, err = terminate(proc)
    assert rc == 143, err
    line = stop_line(err)
    m = re.fullmatch(r"numcnn train: stopped by SIGTERM; epoch (\d+) \(the last finished\) is saved in (.+)\. "
                     r"Continue with: numcnn train --out (.+) --resume --epochs 30", line)
    assert m, err
    saved = int(m.group(1))
    assert 1 <= saved < 30 and m.group(2) == str(out / runs.CHECKPOINT) and m.group(3) == shlex.quote(str(out))
    assert json.loads((out / runs.CHECKPOINT / "state.json").read_text())["epoch"] == saved
    assert not (out / runs.WEIGHTS).exists() and not (out / runs.LOCK).exists()
    r = cli(*run_hint(err), "--quiet")  # what the message suggests continues the run
    assert r.rc == 0, r.err
    assert epochs_of(out) == list(range(1, 31))


def test_sigterm_before_the_first_epoch_claims_no_checkpoint_and_keeps_the_config(data_dir, tmp_path, cli):
    out = tmp_path / "run"
    proc = start("train", "--model", "convnet", "--batch-size", 1, "--epochs", 1, "--data-dir", data_dir,
                 "--out", out)
    wait_for_line(proc, "kernels:")  # the last line before training starts
    time.sleep(0.1)  # into the first epoch, which takes longer (convnet, 216 images one by one)
    rc, err = terminate(proc)
    assert rc == 143, err
    line = stop_line(err)
    assert line.startswith("numcnn train: stopped by SIGTERM before the first epoch finished: no checkpoint was "
                           "written, so there is nothing to resume yet."), err
    assert "is saved" not in line and f"{out} is kept, holding only the run's config.json" in line, err
    assert sorted(os.listdir(out)) == sorted([runs.MARKER, runs.CONFIG]), err
    r = cli(*run_hint(err))  # starts the run again from epoch 1, with the run's settings
    assert r.rc == 0, r.err
    assert "no checkpoint yet, starting the run from its first epoch" in r.out
    assert epochs_of(out) == [1]


# -- in-process: Ctrl-C, SIGTERM outside training, the handler put back ----------------------------------------


def test_ctrl_c_in_epoch_1_claims_no_checkpoint(cli, data_dir, tmp_path, monkeypatch):
    def interrupt(self, run, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", interrupt)  # before the first checkpoint is written
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", 2, "--data-dir", data_dir, "--out", out)
    assert r.rc == 130, r.err
    line = one_line(r.err)
    assert line.startswith("numcnn train: interrupted (Ctrl-C) before the first epoch finished: no checkpoint"), line
    assert "nothing to resume yet" in line and "is saved" not in line
    assert sorted(os.listdir(out)) == sorted([runs.MARKER, runs.CONFIG])
    monkeypatch.undo()
    r = cli(*run_hint(r.err), "--quiet")
    assert r.rc == 0, r.err
    assert epochs_of(out) == [1, 2]


def test_ctrl_c_after_an_epoch_names_it(cli, data_dir, tmp_path, monkeypatch):
    original = runs.MetricsWriter.on_epoch_end

    def interrupt(self, run, record):
        original(self, run, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(runs.MetricsWriter, "on_epoch_end", interrupt)
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", 2, "--data-dir", data_dir, "--out", out)
    assert r.rc == 130
    assert one_line(r.err).startswith("numcnn train: interrupted (Ctrl-C); epoch 1 (the last finished) is saved in")


def test_sigterm_outside_training_exits_143_and_the_handler_is_put_back(cli, data_dir, tmp_path, monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    load_dataset = runs.load_dataset

    def terminated_while_reading(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # handled by numcnn train: raises in this (the main) thread
        return load_dataset(*a, **k)

    monkeypatch.setattr(runs, "load_dataset", terminated_while_reading)
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", 1, "--data-dir", data_dir, "--out", out)
    assert r.rc == 143 and one_line(r.err) == "numcnn train: stopped by SIGTERM", r.err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not out.exists()  # nothing written yet: the folder the lock made is gone with it
    monkeypatch.undo()
    assert cli("train", *TINY, "--epochs", 1, "--data-dir", data_dir, "--out", out).rc == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_as_interrupt_restores_a_custom_handler():
    def mine(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with stop.sigterm_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) is not mine
            with pytest.raises(stop.Terminated):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs between bytecodes, well before this ends
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert issubclass(stop.Terminated, KeyboardInterrupt)
    assert stop.exit_code(stop.Terminated()) == 143 and stop.exit_code(KeyboardInterrupt()) == 130


# -- a crash between the two renames of a checkpoint swap -------------------------------------------------------


def weights(path: Path) -> dict:
    return {k: v.numpy() for k, v in load(path).items()}


@pytest.mark.parametrize("state", ["between the renames", "before the old one was deleted"])
def test_resume_recovers_a_half_swapped_checkpoint(cli, data_dir, tmp_path, state):
    common = ["--model", "shallow", "--scheduler", "none", "--limit", 40, "--quiet", "--data-dir", data_dir]
    assert cli("train", *common, "--epochs", 3, "--out", tmp_path / "straight").rc == 0
    out = tmp_path / "run"
    assert cli("train", *common, "--epochs", 2, "--out", out).rc == 0
    ckpt, old, tmp = out / runs.CHECKPOINT, out / f".{runs.CHECKPOINT}.old", out / f".{runs.CHECKPOINT}.tmp"
    if state == "between the renames":  # the old checkpoint moved aside, the new one not yet in place
        ckpt.rename(old)
    else:  # the new one in place, the old one still there
        shutil.copytree(ckpt, old)
    tmp.mkdir()  # and an unfinished new checkpoint
    (tmp / "model.safetensors").write_bytes(b"partial")
    r = cli("train", "--out", out, "--resume", "--epochs", 3)
    assert r.rc == 0, r.err
    if state == "between the renames":
        assert f"{ckpt}: put back the checkpoint of epoch 2 left in {old.name}" in r.out
    assert f"deleted the unfinished checkpoint {tmp.name}" in r.out
    assert not old.exists() and not tmp.exists()
    assert epochs_of(out) == [1, 2, 3]
    got, reference = weights(out / runs.WEIGHTS), weights(tmp_path / "straight" / runs.WEIGHTS)
    assert got.keys() == reference.keys()
    for k in reference:
        np.testing.assert_array_equal(got[k], reference[k], err_msg=k)


# -- --data-dir ------------------------------------------------------------------------------------------------


def test_a_missing_data_dir_is_an_error_even_with_another_copy_around(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_DATA", str(data_dir))  # a copy the data layer would otherwise find
    out = tmp_path / "run"
    missing = tmp_path / "nonexistent"
    r = cli("train", *TINY, "--epochs", 1, "--data-dir", missing, "--out", out)
    assert r.rc == 2 and one_line(r.err) == f"numcnn train: error: --data-dir {missing}: no such folder"
    assert not out.exists()
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = cli("train", *TINY, "--epochs", 1, "--data-dir", a_file, "--out", out)
    assert r.rc == 2 and one_line(r.err).endswith(f"--data-dir {a_file}: not a folder")


def test_a_data_dir_without_the_files_is_not_replaced_by_another_copy(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NUMCNN_DATA", str(data_dir))
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("train", *TINY, "--epochs", 1, "--data-dir", empty, "--out", tmp_path / "run")
    assert r.rc == 2
    line = one_line(r.err)
    assert f"the dataset folder {empty} does not hold the dataset's files; a copy was found in {data_dir}" in line
    assert cli("train", *TINY, "--epochs", 1, "--out", tmp_path / "env-run").rc == 0  # without --data-dir: found


def test_resume_refuses_a_missing_dataset_folder_of_the_run(cli, data_dir, tmp_path, monkeypatch):
    moved = tmp_path / "data"
    shutil.copytree(data_dir, moved)
    out = tmp_path / "run"
    assert cli("train", *TINY, "--scheduler", "none", "--epochs", 1, "--data-dir", moved, "--out", out).rc == 0
    elsewhere = tmp_path / "moved-data"
    moved.rename(elsewhere)
    monkeypatch.setenv("NUMCNN_DATA", str(elsewhere))  # not used unless named
    r = cli("train", "--out", out, "--resume", "--epochs", 2)
    assert r.rc == 2 and f"the run's dataset folder {moved} (in its config.json) is missing" in one_line(r.err)
    r = cli("train", "--out", out, "--resume", "--epochs", 2, "--data-dir", elsewhere, "--quiet")
    assert r.rc == 0, r.err
    assert epochs_of(out) == [1, 2]
