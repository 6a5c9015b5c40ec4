"""Helpers for the hostile-file tests, handed out through fixtures (pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import tracemalloc
from contextlib import contextmanager

import pytest


@contextmanager
def _peak_below(limit_bytes: int):
    """Fail if Python/NumPy allocations inside the block peak above ``limit_bytes`` (tracemalloc sees NumPy's
    array buffers), so a forged size that slipped through to an allocation is caught even when it would fit."""
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < limit_bytes, f"peak allocation {peak} bytes >= {limit_bytes}"


@pytest.fixture(scope="session")
def peak_below():
    return _peak_below


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder per module, for hypothesis examples (function-scoped tmp_path is not reset between them)."""
    return tmp_path_factory.mktemp("hostile")
