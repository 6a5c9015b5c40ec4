"""The compiled kernels' thread-count check, shared by their tests: code run in a fresh process on the compiled
backend (tests/ on its path) prints one digest of its results per thread count, 1, 2 and 3; all must agree."""

import hashlib
import os
import subprocess
import sys

import numpy as np

TESTS = os.path.dirname(os.path.abspath(__file__))


def digest(arrays) -> str:
    """SHA-256 of the arrays' bytes, in C order, one after the other."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def assert_same_bits_for_1_2_and_3_threads(code: str) -> None:
    """Run ``code`` (it prints three digests) with NUMCNN_KERNELS=numba; the three must be equal."""
    env = {**os.environ, "NUMCNN_KERNELS": "numba",
           "PYTHONPATH": os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    digests = r.stdout.split()
    assert len(digests) == 3 and len(set(digests)) == 1, digests
