"""Helpers for the distributed tests: ranks as threads in this process (no MPI needed), and mpirun on 127.0.0.1.

pytest runs with --import-mode=importlib, so helpers are handed out as fixtures rather than imported by name.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


class _Hub:
    def __init__(self, size: int):
        self.size = size
        self.slots: list = [None] * size
        self.barrier = threading.Barrier(size, timeout=30)


class ThreadComm:
    """A communicator whose ranks are threads of this process: each collective is an exchange through shared
    slots between two barriers. Reductions sum in rank order, as a deterministic MPI would."""

    timeout = None
    mpi_comm = None

    def __init__(self, hub: _Hub, rank: int):
        self.hub, self.rank, self.size = hub, rank, hub.size
        self.calls: list[str] = []

    def allgather(self, buf, what=""):
        self.calls.append(f"allgather:{what}")
        self.hub.slots[self.rank] = np.array(buf, copy=True)
        self.hub.barrier.wait()
        out = np.stack(self.hub.slots)
        self.hub.barrier.wait()
        return out

    def allreduce_(self, buf, op="sum", what=""):
        self.calls.append(f"allreduce:{what}")
        self.hub.slots[self.rank] = np.array(buf, copy=True)
        self.hub.barrier.wait()
        acc = self.hub.slots[0].copy()
        for s in self.hub.slots[1:]:
            acc = acc + s if op == "sum" else (np.maximum(acc, s) if op == "max" else np.minimum(acc, s))
        self.hub.barrier.wait()
        buf[...] = acc
        return buf

    def bcast_(self, buf, root=0, what=""):
        self.calls.append(f"bcast:{what}")
        self.hub.slots[self.rank] = np.array(buf, copy=True)
        self.hub.barrier.wait()
        value = self.hub.slots[root]
        self.hub.barrier.wait()
        buf[...] = value
        return buf

    def barrier(self, what=""):
        self.hub.barrier.wait()


@pytest.fixture
def run_ranks():
    """``run_ranks(n, fn)`` runs ``fn(comm)`` on n thread-ranks and returns their results in rank order."""

    def run(n: int, fn):
        hub = _Hub(n)
        results: list = [None] * n
        errors: list = []

        def body(rank):
            try:
                results[rank] = fn(ThreadComm(hub, rank))
            except BaseException as e:  # noqa: BLE001 - re-raised in the test's thread
                errors.append(e)
                hub.barrier.abort()

        threads = [threading.Thread(target=body, args=(r,)) for r in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        if errors:
            raise errors[0]
        return results

    return run


# -- mpirun ------------------------------------------------------------------------------------------------------


def _mpi_available() -> str | None:
    """Why the MPI tests cannot run here, or None."""
    if shutil.which("mpirun") is None:
        return "mpirun not found (apt-get install openmpi-bin libopenmpi-dev)"
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py not installed (pip install 'numcnn[mpi]')"
    return None


@pytest.fixture(scope="session")
def mpirun():
    """``mpirun(n, *args, timeout=...)`` runs ``python -u tests/distributed/_worker.py *args`` on n ranks of
    127.0.0.1 and returns the CompletedProcess (stdout, stderr as text). Skips when MPI is not installed."""
    why = _mpi_available()
    if why:
        if os.environ.get("NUMCNN_REQUIRE_MPI") == "1":  # CI (.ci/run): a missing MPI is a failure, not a skip
            pytest.fail(why)
        pytest.skip(why)
    version = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout
    openmpi = "Open MPI" in version or "OpenRTE" in version
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("NUMCNN_DIST_TIMEOUT", None)

    def run(n: int, *args, timeout: float = 60, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        if openmpi:
            # 127.0.0.1 only, shared memory only; ranks yield while they wait (more ranks than this machine's cores).
            launcher = ["mpirun", "-np", str(n), "--host", f"127.0.0.1:{n}", "--oversubscribe", "--bind-to", "none",
                        "--mca", "btl", "self,vader", "--mca", "mpi_yield_when_idle", "1"]
        else:  # MPICH / Hydra
            launcher = ["mpirun", "-n", str(n), "-host", "127.0.0.1"]
        cmd = [*launcher, sys.executable, "-u", str(HERE / "_worker.py"), *map(str, args)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**env, **(extra_env or {})}, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # mpirun and the ranks it started: the session this test opened
            out, err = proc.communicate()
            pytest.fail(f"mpirun -np {n} {' '.join(map(str, args))} hung for {timeout} s\nstdout:\n{out}\n"
                        f"stderr:\n{err}")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    return run


@pytest.fixture(scope="session")
def worker():
    """The _worker module (model, data and training routine shared by the MPI ranks and the references)."""
    spec = importlib.util.spec_from_file_location("numcnn_dist_worker", HERE / "_worker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
