"""A tiny trained run for the explore tests, its explorer, and an HTTP client of the app.

The run is trained once per session by the command line, on a synthetic MNIST-layout dataset written into a
temporary folder (as tests/cli/conftest.py does): nothing touches the network or the real datasets. Helpers are
handed out as fixtures (pytest runs with --import-mode=importlib, so a sibling module cannot be imported by name).
"""

from __future__ import annotations

import io
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from fake_datasets import isolate_data_env, write_fake_dataset
from numcnn.cli.main import main

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2 for its test client; httpx works the same
    warnings.simplefilter("ignore")
    import starlette.testclient  # noqa: F401



@pytest.fixture(autouse=True)
def isolated_data_env(tmp_path, monkeypatch):
    isolate_data_env(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A folder with the four MNIST-layout files: 240 training and 60 test images (tests/fake_datasets.py)."""
    return write_fake_dataset(tmp_path_factory.mktemp("explore-data"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A convnet run folder (2 epochs on 120 images: about half the test images misclassified)."""
    out = tmp_path_factory.mktemp("explore-runs") / "convnet"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["train", "--data-dir", str(data_dir), "--limit", "120", "--epochs", "2", "--out", str(out)])
    assert rc == 0, buf.getvalue()
    return out


@pytest.fixture(scope="session")
def explorer(trained_run):
    from numcnn.explore import Explorer

    return Explorer.open(trained_run)


@pytest.fixture(scope="session")
def app(explorer):
    from numcnn.explore import create_app

    return create_app(explorer)


@pytest.fixture
def client(app):
    """An HTTP client of the app (Host 127.0.0.1, as a browser on this machine sends)."""
    from starlette.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=True) as c:
        yield c


@pytest.fixture
def one_line_error():
    """Check an error answer: the status and a body {"error": one non-empty line}; returns the message."""

    def check(response, status: int) -> str:
        assert response.status_code == status, (response.status_code, response.text)
        body = response.json()
        assert set(body) == {"error"}, body
        assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
        return body["error"]

    return check


@pytest.fixture
def unpack():
    """A packed array from an answer as an ndarray."""
    from numcnn.explore.arrays import unpack as decode

    return decode
