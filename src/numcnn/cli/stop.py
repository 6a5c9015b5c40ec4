"""How ``numcnn train`` stops early: Ctrl-C and SIGTERM, and the folder of the dataset it was pointed at.

**Ctrl-C and SIGTERM.** While ``numcnn train`` runs, SIGTERM (what ``kill``, a batch scheduler or a container
runtime sends) is turned into :class:`Terminated`, a KeyboardInterrupt raised in the main thread: the run stops as on
Ctrl-C. Rank 0 says which epoch its checkpoint holds and the command that continues it, or, when no epoch finished
yet, that there is nothing to resume: the run folder is then kept, holding only the run's config.json (and its
marker), and the same ``--resume`` command starts the run again from epoch 1 with the same settings (``--force``
starts a new one over it, or delete the folder). The exit status is 128 + the signal number, as a shell reports a
process killed by it: 130 for Ctrl-C (SIGINT), 143 for SIGTERM. The previous SIGTERM handler is put back when the
command ends; a second SIGTERM while the first one is being handled ends the process at once (the default action).
"""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..training.checkpoint import checkpoint_epoch, recover_checkpoint
from .errors import CLIError

EXIT_SIGINT, EXIT_SIGTERM = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the handler :func:`sigterm_as_interrupt` installs."""


def _raise_terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` inside the block (main thread only: signal handlers live there); the
    previous handler is restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def exit_code(exc: KeyboardInterrupt) -> int:
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def _how(exc: KeyboardInterrupt) -> str:
    return "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"


def training_stopped(exc: KeyboardInterrupt, out: Path, checkpoint: Path, epochs: int) -> str:
    """Rank 0's message when Ctrl-C or SIGTERM stops training (a checkpoint half swapped in is put back first)."""
    recover_checkpoint(checkpoint)
    saved = checkpoint_epoch(checkpoint)
    again = f"numcnn train --out {shlex.quote(str(out))} --resume --epochs {epochs}"
    if saved is None:
        return (f"numcnn train: {_how(exc)} before the first epoch finished: no checkpoint was written, so there is "
                f"nothing to resume yet. {out} is kept, holding only the run's config.json; {again} starts the run "
                "again from epoch 1 with the same settings (or delete the folder)")
    return (f"numcnn train: {_how(exc)}; epoch {saved} (the last finished) is saved in {checkpoint}. Continue with: "
            f"{again}")


def stopped(exc: KeyboardInterrupt) -> str:
    """The message of a SIGTERM outside training (reading the data, testing at the end)."""
    return f"numcnn train: {_how(exc)}"


def data_root(data_dir: str | None, config: dict | None, download: bool) -> str | None:
    """The dataset folder of a run: ``--data-dir``, else the resumed run's (config.json). A folder named there that
    does not exist is an error (with ``--download`` a missing --data-dir is where the files go), never a fallback to
    another copy of the dataset ($NUMCNN_DATA, the user cache, the system folder)."""
    if data_dir is not None:
        path = Path(data_dir)
        if not path.exists() and not download:
            raise CLIError(f"--data-dir {data_dir}: no such folder")
        if path.exists() and not path.is_dir():
            raise CLIError(f"--data-dir {data_dir}: not a folder")
        return data_dir
    root = (config or {}).get("dataset", {}).get("root")
    if root is not None and not Path(root).is_dir():
        raise CLIError(f"the run's dataset folder {root} (in its config.json) is missing: pass --data-dir DIR, "
                       "a folder holding the dataset's files")
    return root


def check_found_in(root: str | None, *splits) -> None:
    """With a dataset folder given, each split (MNIST / FashionMNIST) must have been read from it, not from another
    copy the data layer found elsewhere (it looks further when the folder lacks the files)."""
    found_in = next((s.folder for s in splits if root is not None and s.folder not in type(s).root_folders(root)), None)
    if found_in is not None:
        raise CLIError(f"the dataset folder {root} does not hold the dataset's files; a copy was found in {found_in}, "
                       "which is not used unless named: pass --data-dir with it")
