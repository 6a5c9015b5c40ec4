import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from numcnn.data import MNIST, FashionMNIST


@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    """No test sees the real user cache, $NUMCNN_DATA, $NUMCNN_MIRRORS or the system folder."""
    monkeypatch.delenv("NUMCNN_DATA", raising=False)
    monkeypatch.delenv("NUMCNN_MIRRORS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.setattr(MNIST, "system_dirs", ())


def idx_bytes(array: np.ndarray) -> bytes:
    """Hand-built uint8 IDX bytes (independent of write_idx)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_split(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def write_fake_dataset(folder: Path, seed: int, n_train: int = 12, n_test: int = 5, gz: bool = True) -> dict:
    """Write the four MNIST-layout files into ``folder``; return {name: array}."""
    folder.mkdir(parents=True, exist_ok=True)
    (xtr, ytr), (xte, yte) = fake_split(seed, n_train), fake_split(seed + 1000, n_test)
    arrays = {
        "train-images-idx3-ubyte": xtr,
        "train-labels-idx1-ubyte": ytr,
        "t10k-images-idx3-ubyte": xte,
        "t10k-labels-idx1-ubyte": yte,
    }
    for name, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / name).write_bytes(data)
    return arrays


class _Routes:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # URL path -> body
        self.truncated: dict[str, tuple[bytes, int]] = {}  # URL path -> (body sent, declared length)
        self.log: list[str] = []


@pytest.fixture
def http_server():
    """A local HTTP server on 127.0.0.1: yields (base URL, routes) ; unknown paths answer 404."""
    routes = _Routes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            routes.log.append(self.path)
            if self.path in routes.files:
                body, declared = routes.files[self.path], None
            elif self.path in routes.truncated:
                body, declared = routes.truncated[self.path]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(declared if declared is not None else len(body)))
            self.end_headers()
            self.wfile.write(body)
            # HTTP/1.0: the connection closes here, short of the declared length for truncated routes.

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def write_fake():
    """write_fake(folder, seed, n_train=12, n_test=5, gz=True) -> {file name without .gz: array}."""
    return write_fake_dataset


@pytest.fixture
def make_idx():
    """make_idx(uint8 array) -> hand-built IDX bytes."""
    return idx_bytes
