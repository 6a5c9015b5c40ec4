"""Helpers for the ONNX tests, handed out through the ``ox`` fixture (pytest runs with --import-mode=importlib,
so a sibling helper module cannot be imported by name). onnxruntime is the oracle."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest


def ort_run(model_bytes: bytes, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_rel_close(got, want, rel: float = 1e-4, what: str = "") -> None:
    """max |got - want| <= rel * max(|want|) (the issue's criterion, relative to the largest logit)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}"
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-30)
    err = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max(initial=0.0))
    assert err <= rel * scale, f"{what}: max abs diff {err:.3g} > {rel} * {scale:.3g}"


@pytest.fixture(scope="session")
def ox():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    return SimpleNamespace(ort_run=ort_run, assert_rel_close=assert_rel_close)
