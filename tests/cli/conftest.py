"""Tiny synthetic datasets for the command-line tests, and helpers handed out as fixtures (pytest runs with
--import-mode=importlib, so a sibling helper module cannot be imported by name).

Nothing here touches the network or the real datasets: every test points the CLI at IDX files written into a
temporary folder (--data-dir) and writes its run folders under tmp_path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fake_datasets import isolate_data_env, write_fake_dataset
from numcnn.cli.main import main


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    isolate_data_env(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder with the four MNIST-layout files: 240 training and 60 test images (tests/fake_datasets.py)."""
    return write_fake_dataset(tmp_path_factory.mktemp("fake-data"))


class Result:
    def __init__(self, rc: int, out: str, err: str):
        self.rc, self.out, self.err = rc, out, err
        self.lines = out.splitlines()

    @property
    def last(self) -> str:
        return self.lines[-1] if self.lines else ""


@pytest.fixture
def cli(capsys):
    """``cli("train", "--epochs", "1", ...)`` runs main(argv) in-process and returns rc, stdout, stderr."""

    def run(*argv) -> Result:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    return run


def accuracy_of(line: str, split: str = "test") -> float:
    m = re.fullmatch(rf"{split} accuracy: ([01]\.\d{{4}})", line)
    assert m, f"not a '{split} accuracy: 0.XXXX' line: {line!r}"
    return float(m.group(1))


@pytest.fixture
def parse_accuracy():
    return accuracy_of


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> tuple[Path, float]:
    """A convnet run (2 epochs on 120 images) shared read-only by the evaluate / predict / plot tests:
    (run folder, the test accuracy train printed)."""
    import io
    from contextlib import redirect_stdout

    out = tmp_path_factory.mktemp("runs") / "convnet"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["train", "--data-dir", str(data_dir), "--limit", "120", "--epochs", "2", "--out", str(out)])
    assert rc == 0, buf.getvalue()
    return out, accuracy_of(buf.getvalue().splitlines()[-1])


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
