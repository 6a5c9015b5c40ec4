"""Shared by the autotune tests (cli and training): a clean runtime per test, and autotune timings faked so that
the algorithm it picks is known in advance."""

from __future__ import annotations

import pytest

from numcnn.kernels.conv import autotune
from numcnn.kernels.runtime import runtime


@pytest.fixture(autouse=True)
def fresh_runtime():
    """Autotune off and an empty table for the test; budget, threads, flag and table restored afterwards."""
    with runtime.scoped(autotune=False, algorithms={}):
        yield


def fresh_process() -> None:
    """What a new process starts with: autotune off, an empty table."""
    runtime.autotune = False
    runtime.load_algorithms({})


def prefer(monkeypatch, fastest: str | None) -> None:
    """Autotune's timings say ``fastest`` wins; None: any timing fails the test (everything must be in the table)."""

    def fake(geo, algorithm, x, w, b, dy):
        if fastest is None:
            pytest.fail("a convolution was timed although the table should hold its choice")
        return 1.0 if algorithm == fastest else 2.0

    monkeypatch.setattr(autotune, "_time_candidate", fake)
