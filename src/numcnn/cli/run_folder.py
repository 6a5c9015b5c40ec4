"""What guards a run folder while ``numcnn train`` writes it: its lock, the folder checks, and ``--force``.

**The lock.** ``numcnn train`` (rank 0 of a --distributed job; the other ranks never write) holds an exclusive
``fcntl.flock`` on ``.numcnn-lock`` inside the run folder from before it checks the folder until the process ends,
``--resume`` and ``--force`` included. A second ``numcnn train`` on the same folder is refused at once (no waiting),
with the holder's PID, host and start time, which the holder writes into the lock file. The kernel drops an flock
when its holder dies, so a killed run never blocks the next one: its stale lock file is simply locked anew. A run
that ends normally removes the lock file (and the folder, if the run created it and left nothing in it: a refused
or failed start leaves no trace). ``numcnn evaluate`` / ``predict`` / ``export`` only read and take no lock.

**--force** deletes only what numcnn wrote: the names of ``runs.RUN_FILES`` at the top of a run folder, and the
checkpoint's files (``runs.CHECKPOINT_FILES``) inside ``checkpoint/`` and its ``.tmp`` / ``.old`` siblings (each
folder removed once empty), plus the temporary files of an atomic write a crash left behind. When the folder holds
anything else, at any depth (a file, a subfolder, a symlink), or is not a run folder (``runs.is_run``) but is not
empty, it refuses, names up to three of those paths and deletes nothing.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from pathlib import Path

from . import runs
from .errors import CLIError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: runs are not locked
    fcntl = None

SHOWN = 3  # foreign paths named in a refusal
#: The temporary file of :func:`numcnn._io.atomic_write` for NAME (left behind only by a crash in the middle).
_TEMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")


# -- the lock --------------------------------------------------------------------------------------------------


class FolderLock:
    """The flock held on ``folder/.numcnn-lock`` (see the module's docstring); a context manager that releases it."""

    def __init__(self, folder: Path):
        self.folder, self.path, self.fd = folder, folder / runs.LOCK, None
        self.made: list[Path] = []  # the folders acquire() created, deepest first

    def acquire(self) -> FolderLock:
        missing = [p for p in (self.folder, *self.folder.parents) if not p.exists()]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CLIError(f"cannot create the run folder {self.folder}: {e.strerror}") from None
        self.made = [p for p in missing if p.is_dir()]
        try:
            self.fd = self._lock()
        except BaseException:
            self._remove_made_folders()
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        try:  # who holds the lock, for the message of a refused run
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:
            pass
        return self

    def _lock(self) -> int:
        """The descriptor of the locked lock file. The file the lock is taken on must still be the one at the path:
        a holder that ends removes it, and a run that opened it just before would otherwise lock a deleted file."""
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # a holder that had made the folder and left it empty removed it
                self.folder.mkdir(parents=True, exist_ok=True)
                continue
            except OSError as e:
                raise CLIError(f"cannot lock the run folder {self.folder}: {self.path}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _holder(fd)
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise CLIError(f"cannot lock the run folder {self.folder}: {e.strerror}") from None
                raise CLIError(f"{self.folder} is in use by another numcnn train ({holder}): two runs in one folder "
                               "would mix their files; wait for it to end, or pick another --out") from None
            try:
                at_path, locked = os.stat(self.path), os.fstat(fd)
                if (at_path.st_dev, at_path.st_ino) == (locked.st_dev, locked.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        raise CLIError(f"cannot lock the run folder {self.folder}: its lock file keeps changing")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding the lock: see _lock
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        for p in self.made:  # deepest first; stops at the first one that holds something
            try:
                p.rmdir()
            except OSError:
                break
        self.made = []

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"PID {int(info['pid'])} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "its PID is not written yet"


def lock(folder: Path) -> FolderLock:
    """Take the lock of run folder ``folder`` (created if missing), or refuse with a CLIError naming its holder."""
    held = FolderLock(folder)
    if fcntl is None:  # pragma: no cover
        return held
    return held.acquire()


# -- checks and --force ----------------------------------------------------------------------------------------


def check_new(out: Path, force: bool) -> None:
    """Refuse to start a new run in ``out`` unless it is missing or empty (its lock file aside), or, with --force,
    a run folder holding only numcnn's files."""
    if not out.exists() or all(p.name == runs.LOCK for p in out.iterdir()):
        return
    run = runs.is_run(out)
    if not force:
        if run:
            raise CLIError(f"{out} already exists and holds a run; pass --resume to continue it or --force to start "
                           "over")
        raise CLIError(f"{out} already exists, is not empty and is not a numcnn run folder; pick another --out")
    refuse_foreign(out, run)


def refuse_foreign(out: Path, run: bool) -> None:
    """--force: a CLIError naming up to three paths of ``out`` numcnn did not write, if there are any."""
    found = foreign(out, run)
    if not found:
        return
    names = ", ".join(_show(p) for p in found[:SHOWN]) + (" and more" if len(found) > SHOWN else "")
    what = (f"holds files numcnn did not write ({names})" if run else
            f"is not a numcnn run folder (no {runs.MARKER}) and is not empty ({names})")
    raise CLIError(f"--force: {out} {what}; --force deletes only a run's own files, so nothing was deleted: move "
                   "them elsewhere or pick another --out")


def _show(path: str) -> str:
    return path if path.isprintable() else repr(path)


def foreign(out: Path, run: bool, limit: int = SHOWN + 1) -> list[str]:
    """Up to ``limit`` paths in ``out`` (relative, folders ending in /) that numcnn did not write: everything but
    the lock file when ``out`` is not a run (``run`` False). Files come before folders, each in name order."""
    found: list[str] = []
    _walk(out, "", runs.RUN_FILES if run else (runs.LOCK,), runs.CHECKPOINT_DIRS if run else (), found, limit)
    return found


def _walk(folder: Path, rel: str, files, dirs, found: list[str], limit: int, own: bool = True) -> None:
    """Adds to ``found`` the entries of ``folder`` (``rel`` in ``out``) that are not one of ``files`` (regular
    files) or ``dirs`` (folders of checkpoint files), descending into every folder. ``own``: ``folder`` itself is
    numcnn's; an empty folder that is not is named itself."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: (e.is_dir(follow_symlinks=False), e.name))
    except OSError:
        found.append(rel or "./")  # unreadable: not known to be numcnn's
        return
    if not entries and not own:
        found.append(rel)
    for e in entries:
        if len(found) >= limit:
            return
        if e.is_dir(follow_symlinks=False):
            known = e.name in dirs
            _walk(Path(e.path), f"{rel}{e.name}/", runs.CHECKPOINT_FILES if known else (), (), found, limit, known)
        elif not (e.is_file(follow_symlinks=False) and written(e.name, files)):
            found.append(rel + e.name)


def written(name: str, names) -> bool:
    """``name`` is one of ``names``, or the temporary file of an atomic write of one of them."""
    m = _TEMP.fullmatch(name)
    return name in names or (m is not None and m.group(1) in names)


def clear(out: Path) -> None:
    """--force: delete numcnn's files in run folder ``out`` (its marker and lock file stay: the new run rewrites
    the marker), after checking once more that it holds nothing else."""
    refuse_foreign(out, runs.is_run(out))
    for e in os.scandir(out):
        if e.is_dir(follow_symlinks=False) and e.name in runs.CHECKPOINT_DIRS:
            for f in os.scandir(e.path):
                if f.is_file(follow_symlinks=False) and written(f.name, runs.CHECKPOINT_FILES):
                    os.unlink(f.path)
            try:
                os.rmdir(e.path)
            except OSError:  # something appeared meanwhile: it stays, and so does the folder
                pass
        elif e.name not in (runs.MARKER, runs.LOCK) and e.is_file(follow_symlinks=False) and \
                written(e.name, runs.RUN_FILES):
            os.unlink(e.path)


def open_new(out: Path, force: bool) -> None:
    """The marker first (rewritten by --force: a new run), so that the folder is known as a run before any other
    file is written into it; --force first deletes the previous run's files."""
    if force:
        clear(out)
    if force or not runs.has_marker(out):
        runs.write_marker(out)
