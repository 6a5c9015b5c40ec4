"""The one way numcnn writes a file: through a temp file in the same folder, fsync, rename over the target.

A crash at any point leaves either the old file or the new one, whole, never a half-written file where a good
one was. Standard library only, so every layer (data, serialization, training, cli) can use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``data`` (bytes, or a function that writes into the open binary file: for streams too large
    to hold) to ``path`` atomically. If the function raises, nothing is left behind and ``path`` is untouched.

    An OSError of the writing itself (a full or read-only file system, no permission, ``path`` a folder...) is
    raised again as the same class and errno with ``filename`` set to ``path`` (not the temp file's name) and a
    ``write_path`` attribute (``path``), which the command line turns into "cannot write PATH: <cause>". The temp
    file is removed in every case."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    in_data = False
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the usual permissions
            if callable(data):
                in_data = True
                data(f)
                in_data = False
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException as e:
        _remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and (not in_data or e.filename in (None, tmp)):
            raise _write_error(e, path) from e
        raise


def _remove(tmp: str | None) -> None:
    try:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    except OSError:
        pass


def _write_error(e: OSError, path: str) -> OSError:
    """``e`` again (same class, errno and message) naming ``path``, with ``write_path`` set."""
    try:
        err = type(e)(e.errno, e.strerror or os.strerror(e.errno), path)
    except Exception:  # an OSError subclass with another constructor
        err = OSError(e.errno, e.strerror or os.strerror(e.errno), path)
    err.write_path = path
    return err
