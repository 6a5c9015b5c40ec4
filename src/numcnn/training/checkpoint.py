"""Checkpoints that resume a run bit for bit.

A checkpoint is a folder: ``model.safetensors`` (weights and buffers), ``optimizer.safetensors`` (the optimizer's
per-parameter arrays, e.g. Adam's moments) and ``state.json`` (epoch, history, optimizer hyper-parameters and
step counts, scheduler state, random-generator states, and the kernels' runtime state -- memory budget, algorithm
table, autotune flag, see numcnn/kernels/runtime.py --: a resumed run computes every kernel as the original run did).
Each file goes through the one atomic-write helper; the folder is written beside the old one and swapped in by
rename, so a crash at any point leaves either the old or the new checkpoint whole, never a mix: a crash between
the two renames leaves the old one as ``.<name>.old`` and no ``<name>``, which :func:`read_checkpoint` reads and
:func:`recover_checkpoint` (called by the next :func:`save_checkpoint`, and by ``numcnn train --resume``) renames back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from .. import _config
from .._io import atomic_write, fsync_dir
from .._schema import check, read_json
from .._version import __version__
from ..kernels.runtime import runtime
from ..serialization import load, save
from .checkpoint_schema import FORMAT, MAX_BYTES, STATE_SCHEMA


def _encode(v):
    """Plain JSON for scheduler/optimizer state: tuples and Counters are tagged so they come back as such."""
    if isinstance(v, Counter):
        return {"__counter__": [[_encode(k), n] for k, n in v.items()]}
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x) for x in v]}
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_encode(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        raise TypeError("checkpoint: arrays belong in safetensors, not in state.json")
    return v


def _decode(v):
    if isinstance(v, dict):
        if set(v) == {"__counter__"}:
            return Counter({_decode(k): n for k, n in v["__counter__"]})
        if set(v) == {"__tuple__"}:
            return tuple(_decode(x) for x in v["__tuple__"])
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _split_optimizer(sd: dict) -> tuple[dict, dict]:
    """Optimizer state_dict -> (arrays for safetensors, the rest for JSON)."""
    arrays, scalars = {}, {}
    for idx, st in sd["state"].items():
        scalars[str(idx)] = {}
        for name, v in st.items():
            if isinstance(v, np.ndarray):
                arrays[f"{idx}.{name}"] = v
            else:
                scalars[str(idx)][name] = _encode(v)
    return arrays, {"state": scalars, "param_groups": _encode(sd["param_groups"])}


def _join_optimizer(arrays: dict, meta: dict) -> dict:
    state: dict = {int(i): dict(_decode(st)) for i, st in meta["state"].items()}
    for key, t in arrays.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = t.numpy()
    return {"state": state, "param_groups": _decode(meta["param_groups"])}


def _generator_state(g: np.random.Generator | None):
    return None if g is None else g.bit_generator.state


def _set_generator_state(g: np.random.Generator | None, state) -> None:
    if g is not None and state is not None:
        g.bit_generator.state = state


def _loader_rngs(loader) -> list:
    """The generators a DataLoader draws from (shuffling and random transforms)."""
    if loader is None:
        return []
    return [getattr(loader, "generator", None), getattr(loader, "_transform_rng", None),
            getattr(loader, "_worker_seed_rng", None)]  # the stream the workers' seeds are drawn from


def save_checkpoint(folder, *, model, optimizer=None, scheduler=None, epoch: int, history=None, train_loader=None,
                    extra: dict | None = None) -> Path:
    """Write the checkpoint folder ``folder`` (replacing a previous one atomically)."""
    folder = Path(folder)
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp, old = _siblings(folder)
    recover_checkpoint(folder)  # a crash between two renames: the old checkpoint back in place before it is replaced
    tmp.mkdir()
    save(model.state_dict(), tmp / "model.safetensors")
    state = {
        "format": FORMAT,
        "numcnn_version": __version__,
        "epoch": int(epoch),
        "history": history.to_dict() if history is not None else None,
        "rng": {"numcnn": _generator_state(_config.default_generator()),
                "loader": [_generator_state(g) for g in _loader_rngs(train_loader)]},
        "scheduler": _encode(scheduler.state_dict()) if scheduler is not None else None,
        "extra": extra or {},
        # What decides the kernels' bits: the memory budget (batch chunks) and which algorithm each "auto"
        # convolution runs (autotuned choices depend on timings): a resumed run must compute the same way.
        "runtime": runtime.state_dict(),
    }
    if optimizer is not None:
        arrays, meta = _split_optimizer(optimizer.state_dict())
        save(arrays, tmp / "optimizer.safetensors")
        state["optimizer"] = meta
    atomic_write(tmp / "state.json", json.dumps(state, indent=1).encode())
    fsync_dir(tmp)
    # Swap: the old folder moves aside, the new one takes its name, then the old one goes.
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    fsync_dir(parent)
    if old.exists():
        shutil.rmtree(old)
    return folder


def _siblings(folder: Path) -> tuple[Path, Path]:
    """``(.<name>.tmp, .<name>.old)``: where save_checkpoint writes the new checkpoint, where the old one waits."""
    return folder.parent / f".{folder.name}.tmp", folder.parent / f".{folder.name}.old"


def _locate(folder: Path) -> Path:
    old = _siblings(folder)[1]
    # ``folder`` once more after ``old``: another process may be renaming old back (recover_checkpoint) meanwhile.
    for path in (folder, old, folder):
        if (path / "state.json").exists():  # old: a crash between the two renames of save_checkpoint
            return path
    raise FileNotFoundError(f"{folder}: no checkpoint here (expected {folder / 'state.json'})")


def recover_checkpoint(folder) -> list[str]:
    """Finish what a crash in the middle of :func:`save_checkpoint` left beside checkpoint ``folder``: the old
    checkpoint, alone in ``.<name>.old`` (a crash between the two renames), is renamed back to ``folder``; an old one
    left beside a whole ``folder`` (a crash before it was deleted) and an unfinished ``.<name>.tmp`` are deleted.
    Returns one line per thing done (empty: nothing was left over)."""
    folder = Path(folder)
    tmp, old = _siblings(folder)
    done = []
    if not folder.exists() and (old / "state.json").exists():
        os.replace(old, folder)
        fsync_dir(folder.parent)
        done.append(f"{folder}: put back the checkpoint of epoch {checkpoint_epoch(folder)} left in {old.name} by a "
                    "run that stopped while replacing it")
    elif (folder / "state.json").exists() and old.exists():
        shutil.rmtree(old)
        done.append(f"{folder}: deleted the previous checkpoint {old.name} a stopped run left beside it")
    if tmp.exists():
        shutil.rmtree(tmp)
        done.append(f"{folder}: deleted the unfinished checkpoint {tmp.name} a stopped run left beside it")
    return done


def has_checkpoint(folder) -> bool:
    """Whether there is a checkpoint to resume from in ``folder`` (or in the ``.<name>.old`` a crash left)."""
    try:
        _locate(Path(folder))
        return True
    except FileNotFoundError:
        return False


def checkpoint_epoch(folder) -> int | None:
    """The epoch saved in checkpoint ``folder`` (or in the ``.<name>.old`` a crash left), None when there is no
    readable checkpoint."""
    try:
        state = read_json(_locate(Path(folder)) / "state.json", MAX_BYTES)  # bounded, as read_checkpoint reads it
        return int(state["epoch"])
    except (OSError, ValueError, TypeError, KeyError):  # SchemaError is a ValueError
        return None


def read_checkpoint(folder) -> dict:
    """The checkpoint's state.json (decoded), its model arrays and optimizer arrays."""
    folder = _locate(Path(folder))
    path = folder / "state.json"
    state = read_json(path, MAX_BYTES)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a numcnn checkpoint (format {state.get('format')!r}, "
                         f"expected {FORMAT!r})" if isinstance(state, dict) else f"{folder}: not a checkpoint")
    check(state, STATE_SCHEMA, str(path))
    state["model"] = load(folder / "model.safetensors")
    if "optimizer" in state:
        state["optimizer_arrays"] = load(folder / "optimizer.safetensors")
    return state


def _restore_runtime(state: dict) -> None:
    """Load the checkpoint's runtime state. Autotune is turned on if it was on when saved, never off: keys the table
    lacks are then measured anew. Checkpoints written before the runtime object kept their algorithm table under
    "conv_algorithms" (and none before that: the fixed rule, an empty table, is what they ran), and all checkpoints
    without a backend were computed by the NumPy kernels."""
    saved = state.get("runtime")
    if saved is None:
        saved = {"algorithms": state.get("conv_algorithms") or {}, "autotune": bool(state.get("conv_autotune"))}
    if isinstance(saved, dict) and "backend" not in saved:
        saved = {**saved, "backend": "numpy"}  # written before the compiled kernels: the NumPy kernels computed it
    autotune = runtime.autotune
    runtime.load_state_dict(saved)
    runtime.autotune = runtime.autotune or autotune


def load_checkpoint(folder, *, model, optimizer=None, scheduler=None, train_loader=None):
    """Restore everything :func:`save_checkpoint` wrote; returns ``(epoch, history)``. The process-wide convolution
    algorithm table is replaced by the checkpoint's, and autotune is turned on if it was on when it was saved (it is
    never turned off: keys the table lacks are then measured anew)."""
    from .history import History

    state = read_checkpoint(folder)
    try:
        model.load_state_dict(state["model"])
        if optimizer is not None:
            if "optimizer" not in state:
                raise ValueError("the checkpoint has no optimizer state")
            optimizer.load_state_dict(_join_optimizer(state["optimizer_arrays"], state["optimizer"]))
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(_decode(state["scheduler"]))
        rng = state.get("rng") or {}
        _set_generator_state(_config.default_generator(), rng.get("numcnn"))
        for g, s in zip(_loader_rngs(train_loader), rng.get("loader") or []):
            _set_generator_state(g, s)
        history = History.from_dict(state["history"]) if state.get("history") else History()
        _restore_runtime(state)
        return state["epoch"], history
    except (KeyError, TypeError, AttributeError, OverflowError, IndexError, ValueError) as e:
        # state.json parsed but does not hold what a checkpoint of these objects holds (damaged, edited by hand,
        # or written for another model or optimizer).
        raise ValueError(f"{folder}: cannot restore this checkpoint (state.json or its arrays): "
                         f"{type(e).__name__}: {e}") from None
