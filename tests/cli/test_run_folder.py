"""The run folder's guards (issue 15, items 1 and 5): the lock that refuses a second ``numcnn train`` into a folder
in use, and ``--force``, which deletes only the files numcnn wrote and refuses when the folder holds anything else.

The lock tests start real ``numcnn train`` processes (``python -m numcnn``): flock is per open file, so a second
process on the same folder meets the lock exactly as a second terminal would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from numcnn import __version__
from numcnn.cli import run_folder, runs, train
from numcnn.cli.main import build_parser

QUICK = ["--model", "shallow", "--limit", 40, "--epochs", 1, "--quiet"]

#: ``python -c PAUSED GO PAUSED_FLAG train ...``: a real ``numcnn train`` that stops after its first epoch (metrics
#: and checkpoint written) until the file GO exists, having created PAUSED_FLAG.
PAUSED = """
import sys, time
from pathlib import Path
from numcnn.cli import runs
from numcnn.cli.main import main

go, paused = Path(sys.argv[1]), Path(sys.argv[2])
original = runs.MetricsWriter.on_epoch_end

def pause(self, run, record):
    original(self, run, record)
    if run.epoch == 1:
        paused.touch()
        while not go.exists():
            time.sleep(0.05)

runs.MetricsWriter.on_epoch_end = pause
sys.exit(main(sys.argv[3:]))
"""

#: ``python -c HOLDER FOLDER``: takes the folder's lock as numcnn train does, says so, and sleeps.
HOLDER = """
import sys, time
from pathlib import Path
from numcnn.cli import run_folder

run_folder.lock(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(600)
"""


def numcnn(*argv, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numcnn", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout)


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (files) and modification time: any write changes it."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None,
                                         p.lstat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def train_run(cli, data_dir, out: Path, *extra) -> None:
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, *extra)
    assert r.rc == 0, r.err


def assert_refused(err: str, *parts: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("numcnn train: error: "), err
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.fixture
def paused_train(tmp_path, data_dir):
    """``start(out, *flags)``: a real numcnn train paused after epoch 1 -> (process, go file). Killed at teardown
    if still running."""
    procs = []

    def start(out: Path, *flags):
        go, paused = tmp_path / f"go-{len(procs)}", tmp_path / f"paused-{len(procs)}"
        argv = ["train", "--data-dir", data_dir, "--model", "shallow", "--limit", 40, "--epochs", 2, "--quiet",
                "--out", out, *flags]
        proc = subprocess.Popen([sys.executable, "-c", PAUSED, str(go), str(paused), *map(str, argv)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        deadline = time.monotonic() + 300
        while not paused.exists():
            if proc.poll() is not None:
                pytest.fail(f"the first train ended before pausing: {proc.communicate()}")
            assert time.monotonic() < deadline, "the first train never reached the end of its first epoch"
            time.sleep(0.05)
        return proc, go

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


# -- the lock ----------------------------------------------------------------------------------------------------


def test_a_second_train_is_refused_while_the_first_runs(paused_train, cli, data_dir, tmp_path, parse_accuracy):
    out = tmp_path / "run"
    first, go = paused_train(out, "--seed", 1)
    lock = json.loads((out / runs.LOCK).read_text())
    assert lock["pid"] == first.pid and lock["host"] == socket.gethostname()
    before = snapshot(out)

    for flags in (["--seed", 2], ["--seed", 2, "--force"], ["--resume"]):
        r = numcnn("train", "--data-dir", data_dir, *QUICK, "--out", out, *flags)
        assert r.returncode == 2 and r.stdout == "", (flags, r.stdout, r.stderr)
        assert_refused(r.stderr, f"{out} is in use by another numcnn train", f"PID {first.pid} on {lock['host']}",
                       f"started {lock['started']}")
        assert snapshot(out) == before, flags  # nothing written, nothing deleted

    go.touch()
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    # one run's folder, whole: its config, and weights that give the accuracy it printed
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    r = cli("evaluate", out)
    assert r.rc == 0 and parse_accuracy(r.last) == parse_accuracy(stdout.splitlines()[-1]), r.err
    assert not (out / runs.LOCK).exists()  # a run that ends removes its lock file
    train_run(cli, data_dir, out, "--force")  # and the folder is free again


def test_a_lock_held_by_this_process_refuses_train_in_a_new_folder_and_leaves_it_untouched(data_dir, tmp_path):
    out = tmp_path / "fresh"
    with run_folder.lock(out):
        before = snapshot(out)
        r = numcnn("train", "--data-dir", data_dir, *QUICK, "--out", out)
        assert r.returncode == 2
        assert_refused(r.stderr, "is in use by another numcnn train", f"PID {os.getpid()} on {socket.gethostname()}")
        assert snapshot(out) == before and sorted(os.listdir(out)) == [runs.LOCK]
    assert not out.exists()  # the lock made the folder; released, it leaves nothing behind


def test_a_killed_holder_never_blocks_the_next_run(cli, data_dir, tmp_path, paused_train):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out)
        assert r.rc == 2 and f"PID {holder.pid} on" in r.err, r.err  # it does hold the lock
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((out / runs.LOCK).read_text())["pid"] == holder.pid  # its lock file stays behind, stale
    train_run(cli, data_dir, out)
    assert runs.is_run(out) and not (out / runs.LOCK).exists()

    # a real run killed in the middle: --resume takes the folder over and finishes it
    out2 = tmp_path / "killed"
    first, _ = paused_train(out2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (out2 / runs.LOCK).exists() and not (out2 / runs.WEIGHTS).exists()
    r = cli("train", "--out", out2, "--resume", "--quiet")
    assert r.rc == 0, r.err
    assert [rec["epoch"] for rec in json.loads((out2 / "metrics.json").read_text())["epochs"]] == [1, 2]


def test_the_lock_is_released_when_a_run_fails(cli, tmp_path):
    empty = tmp_path / "no-data"
    empty.mkdir()
    out = tmp_path / "a" / "b"
    r = cli("train", "--dataset", "mnist", "--data-dir", empty, "--out", out)
    assert r.rc == 2 and "could not find" in r.err
    assert not (tmp_path / "a").exists()  # the folders the lock made are gone with it
    mine = tmp_path / "mine"
    mine.mkdir()
    r = cli("train", "--dataset", "mnist", "--data-dir", empty, "--out", mine)
    assert r.rc == 2 and mine.is_dir() and os.listdir(mine) == []  # the user's empty folder stays, empty
    with run_folder.lock(mine):  # free again
        pass


def _plan_args(out: Path, *flags):
    return build_parser().parse_args(["train", "--out", str(out), *flags])


class _Rank:
    def __init__(self, rank: int):
        self.rank, self.size = rank, 2


@pytest.mark.parametrize("rank", [0, 1])
def test_with_distributed_only_rank_0_takes_the_lock(rank, tmp_path, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(train, "_init_distributed", lambda args: _Rank(rank))
    with run_folder.lock(out), ExitStack() as held:
        if rank == 0:
            with pytest.raises(train.CLIError, match="is in use by another numcnn train"):
                train._plan(_plan_args(out), held)
        else:
            assert train._plan(_plan_args(out), held).out == out  # checks the folder, takes no lock


def test_mpirun_job_is_refused_when_its_folder_is_in_use(data_dir, tmp_path):
    if shutil.which("mpirun") is None or not _has("mpi4py"):
        pytest.skip("needs mpirun and mpi4py")
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout
    if "Open MPI" not in version and "OpenRTE" not in version:
        pytest.skip("the launcher flags below are Open MPI's")
    env = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}
    cmd = ["mpirun", "-np", "2", "--host", "127.0.0.1:2", "--oversubscribe", "--bind-to", "none", "--mca", "btl",
           "self,vader", sys.executable, "-m", "numcnn", "train", "--distributed", "--data-dir", str(data_dir),
           *map(str, QUICK), "--out", str(tmp_path / "run")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr  # rank 1 takes no lock, so it does not collide with rank 0's
    with run_folder.lock(tmp_path / "run"):
        before = snapshot(tmp_path / "run")
        r = subprocess.run([*cmd, "--force"], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 2 and f"PID {os.getpid()}" in r.stderr and "is in use" in r.stderr, r.stderr
        assert snapshot(tmp_path / "run") == before


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# -- --force -----------------------------------------------------------------------------------------------------


def test_force_refuses_a_folder_that_is_not_a_run(cli, data_dir, tmp_path):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    files = {"config.json": '{"learning_rate": 0.1}\n', "metrics.csv": "epoch,loss\n1,0.5\n",
             "checkpoint/important.txt": "do not delete"}
    for name, text in files.items():
        (out / name).write_text(text)
    before = snapshot(out)
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force")
    assert r.rc == 2 and r.out == ""
    assert_refused(r.err, f"--force: {out} is not a numcnn run folder", "config.json", "metrics.csv",
                   "checkpoint/important.txt", "nothing was deleted")
    assert snapshot(out) == before
    assert {name: (out / name).read_text() for name in files} == files
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out)  # without --force: --force is not suggested
    assert r.rc == 2
    assert_refused(r.err, "is not empty and is not a numcnn run folder; pick another --out")
    assert snapshot(out) == before


def test_force_refuses_a_run_holding_a_file_of_the_user(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    train_run(cli, data_dir, out)
    (out / "notes.txt").write_text("my notes")
    before = snapshot(out)
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force", "--seed", 3)
    assert r.rc == 2
    assert_refused(r.err, f"--force: {out} holds files numcnn did not write (notes.txt)", "nothing was deleted")
    assert snapshot(out) == before


@pytest.mark.parametrize("make", ["checkpoint/mine.txt", "checkpoint/sub/", "checkpoint/sub/deep.txt", "figures/",
                                  "symlink", "checkpoint-as-file"])
def test_force_refuses_foreign_paths_at_any_depth(make, cli, data_dir, tmp_path):
    out = tmp_path / "run"
    train_run(cli, data_dir, out)
    kept = tmp_path / "kept.csv"
    kept.write_text("the user's")
    if make == "symlink":  # numcnn never writes symlinks: a metrics.csv that is one is not numcnn's
        (out / "metrics.csv").unlink()
        (out / "metrics.csv").symlink_to(kept)
        shown = "metrics.csv"
    elif make == "checkpoint-as-file":
        shutil.rmtree(out / "checkpoint")
        (out / "checkpoint").write_text("not a folder")
        shown = "checkpoint"
    elif make.endswith("/"):
        (out / make).mkdir(parents=True)
        shown = make
    else:
        (out / make).parent.mkdir(parents=True, exist_ok=True)
        (out / make).write_text("mine")
        shown = make
    before = snapshot(out)
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force")
    assert r.rc == 2
    assert_refused(r.err, f"holds files numcnn did not write ({shown})")
    assert snapshot(out) == before and kept.read_text() == "the user's"


def test_force_names_three_paths_and_says_there_are_more(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    for name in "abcde":
        (out / f"{name}.txt").write_text(name)
    with pytest.raises(run_folder.CLIError) as e:
        run_folder.check_new(out, force=True)
    assert "(a.txt, b.txt, c.txt and more)" in str(e.value)
    assert run_folder.foreign(out, run=False, limit=10) == [f"{n}.txt" for n in "abcde"]


def test_force_starts_a_run_over(cli, data_dir, tmp_path):
    out = tmp_path / "run"
    train_run(cli, data_dir, out)
    old_weights = (out / runs.WEIGHTS).read_bytes()
    # what numcnn may leave after a crash: the checkpoint's swap folders, atomic-write temporaries
    shutil.copytree(out / "checkpoint", out / ".checkpoint.old")
    shutil.copytree(out / "checkpoint", out / ".checkpoint.tmp")
    (out / ".config.json.ab12_xyz.tmp").write_text("{")
    (out / "checkpoint" / ".state.json.0a1b2c3d.tmp").write_text("{")
    (out / "confusion.png").write_bytes(b"png")  # numcnn evaluate's
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force", "--seed", 5)
    assert r.rc == 0, r.err
    assert sorted(os.listdir(out)) == sorted([runs.MARKER, "checkpoint", "config.json", "curves.png", "metrics.csv",
                                             "metrics.json", runs.WEIGHTS])
    assert sorted(os.listdir(out / "checkpoint")) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    assert json.loads((out / "config.json").read_text())["seed"] == 5
    assert (out / runs.WEIGHTS).read_bytes() != old_weights
    marker = json.loads((out / runs.MARKER).read_text())
    assert marker["format"] == runs.FORMAT and marker["numcnn_version"] == __version__


def test_marker_is_written_first(cli, data_dir, tmp_path, monkeypatch):
    """The marker exists before config.json is written: a folder holding a config of numcnn's is always a run."""
    seen = []
    write_json = runs.write_json

    def spy(path, obj):
        seen.append((path.name, (path.parent / runs.MARKER).exists()))
        write_json(path, obj)

    monkeypatch.setattr(runs, "write_json", spy)
    train_run(cli, data_dir, tmp_path / "run")
    assert seen[:2] == [(runs.MARKER, False), ("config.json", True)]


def test_a_run_written_before_the_marker_is_still_a_run(cli, data_dir, tmp_path, parse_accuracy):
    out = tmp_path / "old"
    train_run(cli, data_dir, out)
    (out / runs.MARKER).unlink()  # as numcnn wrote runs before the marker
    assert runs.is_run(out)
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out)
    assert r.rc == 2 and "holds a run; pass --resume to continue it or --force to start over" in r.err
    (out / "notes.txt").write_text("mine")
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force")
    assert r.rc == 2 and "holds files numcnn did not write (notes.txt)" in r.err and (out / "config.json").exists()
    (out / "notes.txt").unlink()
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force", "--seed", 4)
    assert r.rc == 0, r.err
    assert runs.has_marker(out) and json.loads((out / "config.json").read_text())["seed"] == 4

    # --resume adopts an old run: it gains the marker
    (out / runs.MARKER).unlink()
    r = cli("train", "--out", out, "--resume", "--epochs", 2, "--quiet")
    assert r.rc == 0, r.err
    assert runs.has_marker(out)


def test_what_is_not_a_run(cli, data_dir, tmp_path):
    out = tmp_path / "old"
    train_run(cli, data_dir, out)
    (out / runs.MARKER).unlink()
    shutil.rmtree(out / "checkpoint")  # no marker and no checkpoint: config.json alone does not make a run
    assert not runs.is_run(out)
    r = cli("train", "--data-dir", data_dir, *QUICK, "--out", out, "--force")
    assert r.rc == 2 and "is not a numcnn run folder" in r.err and (out / "config.json").exists()
    assert cli("evaluate", out).rc == 0  # reading needs no marker


    legacy = tmp_path / "legacy"
    train_run(cli, data_dir, legacy)
    (legacy / runs.MARKER).unlink()
    config, state = (legacy / "config.json").read_text(), (legacy / "checkpoint" / "state.json").read_text()
    assert runs.is_run(legacy)
    for bad in ("{not json", json.dumps({"format": "something-else"})):
        (legacy / "config.json").write_text(bad)
        assert not runs.is_run(legacy)
        (legacy / "config.json").write_text(config)
        (legacy / "checkpoint" / "state.json").write_text(bad)
        assert not runs.is_run(legacy)
        (legacy / "checkpoint" / "state.json").write_text(state)
        (legacy / runs.MARKER).write_text(bad)  # a marker that is not numcnn's does not count either
        (legacy / "config.json").write_text(bad)
        assert not runs.is_run(legacy)
        (legacy / "config.json").write_text(config)
        (legacy / runs.MARKER).unlink()


def test_an_empty_folder_or_a_stale_lock_file_alone_is_free(cli, data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    train_run(cli, data_dir, empty)
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / runs.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "long ago"}))
    train_run(cli, data_dir, stale)
    assert runs.is_run(stale) and not (stale / runs.LOCK).exists()
