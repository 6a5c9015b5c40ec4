"""Tiny synthetic datasets for the command-line tests, and helpers handed out as fixtures (pytest runs with
--import-mode=importlib, so a sibling helper module cannot be imported by name).

Nothing here touches the network or the real datasets: every test points the CLI at IDX files written into a
temporary folder (--data-dir) and writes its run folders under tmp_path.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from numcnn.cli.main import main
from numcnn.data import MNIST, FashionMNIST, write_idx

N_TRAIN, N_TEST = 240, 60


def make_images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Dim noise with a bright 6x6 square whose place depends on the class: learnable in a few steps."""
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
    for k in range(10):
        r, c = divmod(k, 4)
        x[y == k, 3 + 8 * r : 9 + 8 * r, 2 + 6 * c : 8 + 6 * c] = 230
    return x, y


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    """No test sees the real user cache, $NUMCNN_DATA or the system folder of Debian's Fashion-MNIST."""
    monkeypatch.delenv("NUMCNN_DATA", raising=False)
    monkeypatch.setenv("NUMCNN_MIRRORS", "http://127.0.0.1:9/")  # a closed port: never the network
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.setattr(MNIST, "system_dirs", ())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder with the four MNIST-layout files: 240 training and 60 test images."""
    folder = tmp_path_factory.mktemp("fake-data")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        x, y = make_images(rng, n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


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
