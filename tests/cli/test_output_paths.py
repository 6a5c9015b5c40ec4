"""Unusable output paths (issue 15): a read-only or full file system, ``evaluate --out`` an existing file,
``export`` to a folder. Each is one line on stderr naming the path and the cause, exit status 2, no traceback,
and no partial or temp file left behind."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest

from numcnn._io import atomic_write


@contextlib.contextmanager
def tmpfs(folder, options):
    """A tmpfs mounted on ``folder`` with ``options`` (skips the test where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def fill(folder):
    """Fill the file system of ``folder`` to the last byte with a file named 'filler'."""
    with open(folder / "filler", "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 1024)


def one_line_error(r, *needles):
    assert r.rc == 2, (r.rc, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    for n in needles:
        assert str(n) in lines[0], lines[0]
    return lines[0]


def test_export_to_read_only_file_system(cli, trained_run, tmp_path):
    pytest.importorskip("onnx")
    run, _ = trained_run
    with tmpfs(tmp_path / "ro", "size=64k,ro") as mnt:
        out = mnt / "model.onnx"
        r = cli("export", run, out)
        one_line_error(r, f"numcnn export: error: cannot write {out}: Read-only file system")
        assert os.listdir(mnt) == []


def test_export_to_full_file_system_leaves_no_partial_file(cli, trained_run, tmp_path):
    pytest.importorskip("onnx")
    run, _ = trained_run
    with tmpfs(tmp_path / "full", "size=64k") as mnt:
        fill(mnt)
        out = mnt / "model.onnx"
        r = cli("export", run, out)
        one_line_error(r, f"numcnn export: error: cannot write {out}: No space left on device")
        assert os.listdir(mnt) == ["filler"]


def test_evaluate_out_on_full_file_system(cli, trained_run, data_dir, tmp_path):
    from numcnn.cli import figures

    if not figures.available():
        pytest.skip("no matplotlib: evaluate writes no figure")
    run, _ = trained_run
    with tmpfs(tmp_path / "full", "size=64k") as mnt:
        fill(mnt)
        r = cli("evaluate", run, "--data-dir", data_dir, "--out", mnt)
        assert r.rc == 2 and "Traceback" not in r.err
        lines = r.err.strip().splitlines()
        assert lines == [f"numcnn evaluate: error: cannot write {mnt / 'confusion.png'}: No space left on device"]
        assert os.listdir(mnt) == ["filler"]


def test_train_out_on_read_only_file_system(cli, data_dir, tmp_path):
    with tmpfs(tmp_path / "ro", "size=64k,ro") as mnt:
        r = cli("train", "--data-dir", data_dir, "--limit", "60", "--epochs", "1", "--out", mnt / "run")
        one_line_error(r, "numcnn train: error: cannot ", str(mnt / "run"), "Read-only file system")
        assert os.listdir(mnt) == []


def test_train_out_on_full_file_system(cli, data_dir, tmp_path):
    with tmpfs(tmp_path / "full", "size=64k") as mnt:
        fill(mnt)
        r = cli("train", "--data-dir", data_dir, "--limit", "60", "--epochs", "1", "--out", mnt / "run")
        line = one_line_error(r, "numcnn train: error: cannot ", str(mnt / "run"), "No space left on device")
        assert "cannot write" in line or "cannot create" in line
        leftovers = [os.path.join(d, f) for d, _, files in os.walk(mnt) for f in files]
        assert not [f for f in leftovers if f.endswith(".tmp")], leftovers


def test_atomic_write_keeps_the_old_file_on_a_full_file_system(tmp_path):
    with tmpfs(tmp_path / "full", "size=64k") as mnt:
        (mnt / "ckpt").write_bytes(b"old")
        fill(mnt)
        with pytest.raises(OSError) as info:
            atomic_write(mnt / "ckpt", b"x" * 100_000)
        assert info.value.filename == str(mnt / "ckpt") and info.value.write_path == str(mnt / "ckpt")
        assert (mnt / "ckpt").read_bytes() == b"old"
        assert sorted(os.listdir(mnt)) == ["ckpt", "filler"]


def test_atomic_write_onto_a_folder_names_the_folder(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError) as info:
        atomic_write(tmp_path / "dir", b"data")
    assert info.value.filename == str(tmp_path / "dir")
    assert os.listdir(tmp_path) == ["dir"]


def test_evaluate_out_an_existing_file_is_refused_before_any_work(cli, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    r = cli("evaluate", tmp_path / "no-such-run", "--out", tmp_path / "taken")
    one_line_error(r, "numcnn evaluate: error: --out", str(tmp_path / "taken"), "is a file, not a folder")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_export_to_a_folder_writes_model_onnx_inside(cli, trained_run, tmp_path):
    pytest.importorskip("onnx")
    run, _ = trained_run
    folder = tmp_path / "exports"
    folder.mkdir()
    r = cli("export", run, folder)
    assert r.rc == 0, r.err
    assert (folder / "model.onnx").is_file()


def test_export_onto_a_folder_named_like_the_file(cli, trained_run, tmp_path):
    pytest.importorskip("onnx")
    run, _ = trained_run
    (tmp_path / "out" / "model.onnx").mkdir(parents=True)  # OUT/model.onnx is itself a folder
    r = cli("export", run, tmp_path / "out")
    one_line_error(r, f"cannot write {tmp_path / 'out' / 'model.onnx'}: Is a directory")
    assert os.listdir(tmp_path / "out" / "model.onnx") == []
