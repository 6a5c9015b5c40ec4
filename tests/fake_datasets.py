"""Tiny synthetic MNIST-layout datasets for tests that run the command line (tests/cli, tests/explore): nothing
touches the network or the real datasets (pytest puts tests/ on the path, see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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


def write_fake_dataset(folder: Path) -> Path:
    """The four MNIST-layout files in ``folder``: N_TRAIN training and N_TEST test images."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        x, y = make_images(rng, n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


def isolate_data_env(tmp_path: Path, monkeypatch) -> None:
    """No test sees the real user cache, $NUMCNN_DATA or the system folder of Debian's Fashion-MNIST."""
    monkeypatch.delenv("NUMCNN_DATA", raising=False)
    monkeypatch.setenv("NUMCNN_MIRRORS", "http://127.0.0.1:9/")  # a closed port: never the network
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.setattr(MNIST, "system_dirs", ())
