"""Fault injection: ``numcnn train`` killed with SIGKILL (no handler runs, no message, no cleanup) at moments spread
over a whole run -- while importing, loading data, training, writing metrics or a checkpoint -- always leaves a run
folder numcnn can read, and ``--resume`` then finishes with weights bit-identical to a run never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ARGS = ["--limit", "200", "--epochs", "4", "--batch-size", "10", "--scheduler", "step", "--quiet"]


def train(data_dir: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMCNN_MIRRORS": "http://127.0.0.1:9/"}
    return subprocess.run([sys.executable, "-m", "numcnn", "train", "--data-dir", str(data_dir), *ARGS, "--out",
                           str(out), *extra], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The uninterrupted run: its final weights' bytes, and how long the whole command took."""
    out = tmp_path_factory.mktemp("kill9") / "whole"
    start = time.perf_counter()
    r = train(data_dir, out)
    assert r.returncode == 0, r.stderr
    return weights_of(out), time.perf_counter() - start


def weights_of(run: Path) -> dict[str, bytes]:
    """Every array of the run's model.safetensors as dtype, shape and bytes (the file's JSON header may list its
    metadata in another order: safetensors keeps it in a hash map)."""
    from safetensors.numpy import load_file

    return {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in load_file(run / "model.safetensors").items()}


def kill_after(data_dir: Path, out: Path, delay: float) -> None:
    env = {**os.environ, "NUMCNN_MIRRORS": "http://127.0.0.1:9/"}
    p = subprocess.Popen([sys.executable, "-m", "numcnn", "train", "--data-dir", str(data_dir), *ARGS, "--out",
                          str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()


def test_sigkill_at_random_moments_then_resume_is_bit_identical(reference, data_dir, tmp_path):
    weights, seconds = reference
    rng = np.random.default_rng(9)
    delays = sorted(rng.uniform(0.05, 0.95, 6) * seconds)  # the same moments on every run of the suite
    outcomes = []
    for i, delay in enumerate(delays):
        out = tmp_path / f"killed{i}"
        kill_after(data_dir, out, delay)
        for name in ("config.json", "metrics.json", ".numcnn-run", "checkpoint/state.json"):
            if (out / name).exists():  # never half-written under its real name (temp files may be left beside)
                json.loads((out / name).read_text())
        r = train(data_dir, out, "--resume")
        if r.returncode == 0:
            outcomes.append("resumed")
        else:  # killed before its first checkpoint: resume says there is nothing to resume, in one line
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
            outcomes.append("started over")
            r = train(data_dir, out, *(["--force"] if out.exists() else []))
            assert r.returncode == 0, r.stderr
        assert weights_of(out) == weights, (i, delay, outcomes)
    assert "resumed" in outcomes, outcomes  # the moments reach past the first checkpoint
