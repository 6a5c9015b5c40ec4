"""The process group: this process's rank, the world size, and the few collectives numcnn needs, over MPI.

MPI (Open MPI, MPICH, a cluster's vendor MPI) through ``mpi4py`` is the transport: the launcher (``mpirun``,
``srun``) starts the processes and tells each its rank; numcnn adds no transport of its own. Started without a
launcher, a process is a world of one and every collective is a copy or nothing, so the same script runs
unchanged with ``python`` and with ``mpirun -np 4 python``.

Every collective here is *collective*: each rank must call it, in the same order. A rank that breaks that rule
(it died, raised, or is stuck) would leave the others waiting forever inside MPI; three things prevent that:

- an uncaught exception on any rank prints its traceback and aborts the whole job (``MPI_Abort``);
- a rank killed by a signal makes ``mpirun`` kill the others;
- a watchdog thread aborts the job when one collective has waited longer than ``timeout`` seconds (a peer
  that is alive but stuck, a lost node), naming the rank and the collective it waited in.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

import numpy as np

#: Seconds a collective may wait for the other ranks before the job is aborted (env: NUMCNN_DIST_TIMEOUT).
DEFAULT_TIMEOUT = 600.0

# Variables that MPI launchers set in every process they start (Open MPI, MPICH/Hydra and Intel MPI, PMIx, Slurm's
# PMI2, MVAPICH): with none of them, this process was started by hand and is a world of one.
_LAUNCHER_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MV2_COMM_WORLD_SIZE")


class DistributedError(RuntimeError):
    """The ranks disagree (different epochs, different parameters) or MPI is missing where it is needed."""


class Communicator:
    """Collectives on NumPy buffers over an ``mpi4py`` communicator.

    Buffers are C-contiguous ndarrays, reduced or broadcast in place; the dtype travels as it is (float32 stays
    float32). ``what`` names the collective in the watchdog's message.
    """

    def __init__(self, mpi_comm, timeout: float | None = DEFAULT_TIMEOUT):
        from mpi4py import MPI

        self._MPI = MPI
        self.mpi_comm = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()
        self.timeout = timeout  # may be changed later (None: wait forever)
        self._watchdog: _Watchdog | None = None

    def __repr__(self) -> str:
        return f"Communicator(rank={self.rank}, size={self.size}, timeout={self.timeout})"

    def _guard(self, what: str):
        if self.timeout is None or self.size == 1:
            return _NO_GUARD
        if self._watchdog is None:
            self._watchdog = _Watchdog(self)
        return self._watchdog.guard(what)

    def allreduce_(self, buf: np.ndarray, op: str = "sum", what: str = "Allreduce") -> np.ndarray:
        """Reduce ``buf`` over all ranks in place (``op``: "sum", "max" or "min") and return it."""
        mpi_op = {"sum": self._MPI.SUM, "max": self._MPI.MAX, "min": self._MPI.MIN}[op]
        with self._guard(what):
            self.mpi_comm.Allreduce(self._MPI.IN_PLACE, buf, op=mpi_op)
        return buf

    def bcast_(self, buf: np.ndarray, root: int = 0, what: str = "Bcast") -> np.ndarray:
        """Overwrite ``buf`` on every rank with root's ``buf`` and return it."""
        with self._guard(what):
            self.mpi_comm.Bcast(buf, root=root)
        return buf

    def allgather(self, buf: np.ndarray, what: str = "Allgather") -> np.ndarray:
        """Every rank's ``buf``, stacked in rank order: shape (size, *buf.shape), same on every rank."""
        out = np.empty((self.size, *buf.shape), dtype=buf.dtype)
        with self._guard(what):
            self.mpi_comm.Allgather(np.ascontiguousarray(buf), out)
        return out

    def barrier(self, what: str = "Barrier") -> None:
        with self._guard(what):
            self.mpi_comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every rank of the job now (MPI_Abort); does not return."""
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            self.mpi_comm.Abort(code)
        finally:  # pragma: no cover - Abort does not return
            os._exit(code)


class SelfCommunicator:
    """The world of one process: the same methods as :class:`Communicator`, each a no-op or a copy."""

    rank = 0
    size = 1
    timeout = None
    mpi_comm = None

    def __repr__(self) -> str:
        return "SelfCommunicator(rank=0, size=1)"

    def allreduce_(self, buf: np.ndarray, op: str = "sum", what: str = "Allreduce") -> np.ndarray:
        return buf

    def bcast_(self, buf: np.ndarray, root: int = 0, what: str = "Bcast") -> np.ndarray:
        return buf

    def allgather(self, buf: np.ndarray, what: str = "Allgather") -> np.ndarray:
        return np.array(buf)[None]

    def barrier(self, what: str = "Barrier") -> None:
        pass

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _NoGuard:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_GUARD = _NoGuard()


class _Watchdog:
    """A daemon thread that aborts the job when one collective has been waiting for longer than the timeout.

    Arming costs a few attribute writes per collective; the thread wakes ten times per timeout (at least once a
    second). It can act while the main thread is blocked because mpi4py releases the GIL inside MPI calls.
    """

    def __init__(self, comm: Communicator):
        self.comm = comm
        self.what = ""
        self.timeout = 0.0
        self.deadline: float | None = None
        self._thread: threading.Thread | None = None

    def guard(self, what: str) -> _WatchdogGuard:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="numcnn-dist-watchdog", daemon=True)
            self._thread.start()
        return _WatchdogGuard(self, what)

    def _run(self) -> None:
        while True:
            time.sleep(min(1.0, (self.comm.timeout or 10.0) / 10))
            deadline = self.deadline
            if deadline is not None and time.monotonic() > deadline:
                c = self.comm
                sys.stderr.write(
                    f"numcnn.distributed: rank {c.rank} of {c.size}: {self.what} did not complete within "
                    f"{self.timeout:g} s: another rank has died or is stuck. Aborting all ranks "
                    "(raise the limit with NUMCNN_DIST_TIMEOUT or init(timeout=...)).\n")
                c.abort(1)


class _WatchdogGuard:
    __slots__ = ("dog", "what")

    def __init__(self, dog: _Watchdog, what: str):
        self.dog, self.what = dog, what

    def __enter__(self):
        self.dog.what = self.what
        self.dog.deadline = time.monotonic() + self.dog.comm.timeout
        self.dog.timeout = self.dog.comm.timeout

    def __exit__(self, *exc):
        self.dog.deadline = None
        return False


# -- the process-wide world ----------------------------------------------------------------------------------

_state: dict = {"comm": None}


def launched_by_mpi() -> bool:
    """Whether an MPI launcher (mpirun, mpiexec, srun) started this process."""
    return any(v in os.environ for v in _LAUNCHER_VARS)


def launcher_world_size() -> int:
    """The number of ranks the launcher says it started (from its environment; 1 when it does not say), known
    without initialising MPI."""
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 1


def _timeout_from_env() -> float | None:
    raw = os.environ.get("NUMCNN_DIST_TIMEOUT")
    if raw is None:
        return DEFAULT_TIMEOUT
    value = float(raw)
    return None if value <= 0 else value


def init(*, timeout: float | None | str = "env", comm=None, abort_on_exception: bool = True):
    """Join the job: return the :class:`Communicator` of all the ranks the launcher started (and remember it).

    Started by ``mpirun``/``srun``: MPI is initialised through mpi4py (``pip install 'numcnn[mpi]'``) and the
    communicator spans ``MPI.COMM_WORLD`` (or ``comm``, an mpi4py communicator). Started by hand: a
    :class:`SelfCommunicator`, world size 1, and MPI is not touched. Calling it again returns the same object.

    timeout: seconds one collective may wait before the job is aborted (None: forever); default
    ``$NUMCNN_DIST_TIMEOUT`` or 600. abort_on_exception: an uncaught exception on one rank aborts every rank
    (else the others would wait forever for it).
    """
    if _state["comm"] is not None:
        return _state["comm"]
    if timeout == "env":
        timeout = _timeout_from_env()
    if comm is None and not launched_by_mpi():
        _state["comm"] = SelfCommunicator()
        return _state["comm"]
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(
            "numcnn.distributed: this process was started by an MPI launcher, but mpi4py is not installed "
            "(pip install 'numcnn[mpi]'; the MPI runtime comes from the system, e.g. apt-get install openmpi-bin "
            "libopenmpi-dev)") from e
    c = Communicator(comm if comm is not None else MPI.COMM_WORLD, timeout=timeout)
    _state["comm"] = c
    if abort_on_exception and c.size > 1:
        _install_excepthook(c)
    return c


def _install_excepthook(c: Communicator) -> None:
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        # The other ranks are (or soon will be) waiting for this one in a collective: end them too.
        try:
            previous(exc_type, exc, tb)
        except Exception:  # pragma: no cover - a broken hook must not stop the abort
            traceback.print_exception(exc_type, exc, tb)
        sys.stderr.write(f"numcnn.distributed: rank {c.rank} of {c.size} stopped on {exc_type.__name__}: {exc}; "
                         "aborting all ranks\n")
        c.abort(1)

    sys.excepthook = hook


def get_comm():
    """The communicator of :func:`init`, or a world of one when init was not called."""
    return _state["comm"] if _state["comm"] is not None else SelfCommunicator()


def is_initialized() -> bool:
    return _state["comm"] is not None


def get_rank() -> int:
    """This process's rank, 0 .. world size - 1 (0 when not distributed)."""
    return get_comm().rank


def get_world_size() -> int:
    """The number of ranks (1 when not distributed)."""
    return get_comm().size


def is_main_process() -> bool:
    """Whether this is rank 0, the one that writes files and prints."""
    return get_comm().rank == 0


def barrier() -> None:
    get_comm().barrier()
