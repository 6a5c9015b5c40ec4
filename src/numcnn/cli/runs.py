"""The run folder: what ``numcnn train`` writes and what evaluate / predict / plot read back.

A run folder holds::

    .numcnn-run        the marker: this folder is a numcnn run (format, numcnn version, creation time); written
                       first, before config.json, so ``numcnn train --force`` knows the folder's files are its own
    config.json        format, numcnn version, model (name, in_channels, num_classes, options), dataset (name,
                       root, class names, image shape, split sizes, limit), normalization (mean, std per channel),
                       seed, the full recipe used, the command line
    model.safetensors  the final weights and buffers (model.state_dict())
    checkpoint/        the last full checkpoint (numcnn.training.Checkpoint), for --resume; its state.json carries
                       a copy of config.json under "extra", so a checkpoint folder alone is enough to load a model
    metrics.csv        one row per epoch (numcnn.training.History columns)
    metrics.json       the same records, plus the test result
    curves.png         loss and accuracy per epoch, train vs validation
    confusion.png      written by ``numcnn evaluate``
    model.onnx         written by ``numcnn export RUN`` (its default output)
    .numcnn-lock       while ``numcnn train`` runs in the folder: the lock keeping a second one out (cli/run_folder.py)

Every file goes through :func:`numcnn.serialization.atomic_write`. Folders written before the marker existed are
still runs (:func:`is_run`) when their config.json is a run config and they hold a checkpoint.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._schema import SchemaError, clean_json, parse_json, read_json
from .._version import __version__
from ..autograd import Tensor, no_grad
from ..data import DataLoader, Normalize, random_split
from ..serialization import atomic_write
from ..training import Callback
from ..training.checkpoint import FORMAT as CHECKPOINT_FORMAT
from ..training.checkpoint_schema import MAX_BYTES as CHECKPOINT_MAX_BYTES
from ..training.run_config import (
    CHECKPOINT,
    CONFIG,
    DATASETS,
    FORMAT,
    WEIGHTS,
    RunError,
    check_config,
    load_trained_run,
    read_config,
)
from .errors import CLIError

ONNX_FILE = "model.onnx"
#: Key of the ONNX metadata_props entry holding the run's config.json (written by ``numcnn export``), so the file
#: alone is enough for ``numcnn predict`` / ``numcnn evaluate`` (class names, normalization).
CONFIG_KEY = "numcnn.config"
MARKER = ".numcnn-run"
LOCK = ".numcnn-lock"
#: The files numcnn writes at the top of a run folder (``numcnn train --force`` deletes these but the marker and the
#: lock file, and refuses when the folder holds anything but these)...
RUN_FILES = (MARKER, LOCK, CONFIG, WEIGHTS, "metrics.csv", "metrics.json", "curves.png", "confusion.png",
             "confusion-val.png", "confusion-train.png", ONNX_FILE)
#: ... its checkpoint folder and the two siblings a checkpoint is swapped in through (training/checkpoint.py) ...
CHECKPOINT_DIRS = (CHECKPOINT, f".{CHECKPOINT}.tmp", f".{CHECKPOINT}.old")
#: ... and the files a checkpoint writes into them.
CHECKPOINT_FILES = ("model.safetensors", "optimizer.safetensors", "state.json")
VAL_IMAGES = 5000  # held out of the training file for validation (fewer for small --limit, see split_sizes)
EVAL_BATCH = 200  # batch size of every evaluation: the same batches, hence the same numbers, in train and evaluate


def write_json(path: Path, obj) -> None:
    atomic_write(path, (json.dumps(clean_json(obj), indent=2) + "\n").encode())


def save_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode())


class MetricsWriter(Callback):
    """metrics.csv and metrics.json after every epoch, so an unfinished run can be watched and plotted."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_epoch_end(self, run, record: dict) -> None:
        save_text(self.folder / "metrics.csv", run.history.to_csv())
        write_json(self.folder / "metrics.json", {"epochs": run.history.records})


# -- folders -------------------------------------------------------------------------------------------------


def _json_format(path: Path):
    """The "format" entry of JSON file ``path``; None when it is not a regular file holding a JSON object."""
    try:
        if not path.is_file() or path.is_symlink():
            return None
        obj = read_json(path, CHECKPOINT_MAX_BYTES)  # the size and nesting bounds of every run-file read
    except (OSError, ValueError):  # SchemaError is a ValueError
        return None
    return obj.get("format") if isinstance(obj, dict) else None


def has_marker(folder: Path) -> bool:
    return _json_format(folder / MARKER) == FORMAT


def is_run(folder: Path) -> bool:
    """Whether ``folder`` is a run folder: it holds the marker, or it was written before the marker existed --
    a config.json of format numcnn-run/1 and a checkpoint (its state.json in checkpoint/, or in .checkpoint.old/
    after a crash between the two renames of a checkpoint swap)."""
    if has_marker(folder):
        return True
    return _json_format(folder / CONFIG) == FORMAT and any(
        _json_format(folder / d / "state.json") == CHECKPOINT_FORMAT for d in (CHECKPOINT, f".{CHECKPOINT}.old"))


def has_config(folder: Path) -> bool:
    """Whether ``folder`` has a config.json to read (evaluate / predict / export read any, marker or not)."""
    return (folder / CONFIG).is_file()


def write_marker(folder: Path) -> None:
    write_json(folder / MARKER, {"format": FORMAT, "numcnn_version": __version__,
                                 "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})


# -- loading a trained model -----------------------------------------------------------------------------------


@dataclass
class Loaded:
    model: object
    config: dict
    run_folder: Path | None  # where evaluate writes confusion.png by default
    source: str  # what the weights were read from, for messages
    epoch: int | None  # the checkpoint's epoch, None for model.safetensors
    onnx: bool = False  # the model is an ONNX file run by numcnn.onnx
    pixels: bool = False  # the model takes pixels in [0, 1] (an ONNX file with the normalization in its graph)


def load_trained(path: str | Path) -> Loaded:
    """The model of a run folder, a checkpoint folder, a run's ``.safetensors`` file or an ``.onnx`` file (from
    ``numcnn export``), with its config."""
    path = Path(path)
    if path.is_file() and path.suffix == ".onnx":
        return _load_onnx(path)
    if path.is_file() and path.suffix != ".safetensors":
        raise CLIError(f"{path}: expected a run folder, a checkpoint folder, a .safetensors or an .onnx file")
    run = load_trained_run(path)
    return Loaded(run.model, run.config, run.run_folder, run.source, run.epoch)


def _load_onnx(path: Path) -> Loaded:
    """An ONNX file written by ``numcnn export`` (its run config is in the metadata) or any ONNX CNN next to a
    run's config.json."""
    try:
        from .. import onnx as nc_onnx

        model = nc_onnx.load(path)
    except ImportError as e:
        raise CLIError(f"{path}: reading ONNX files needs the onnx package: pip install 'numcnn[onnx]' ({e})") from None
    except ValueError as e:
        raise CLIError(str(e)) from None
    if CONFIG_KEY in model.metadata:
        where = f"{path} (metadata {CONFIG_KEY})"
        try:
            config = check_config(parse_json(model.metadata[CONFIG_KEY], where), where)
        except (SchemaError, RunError) as e:
            raise CLIError(str(e)) from None
    elif has_config(path.parent):
        config = read_config(path.parent)
    else:
        raise CLIError(f"{path}: no run config (not written by 'numcnn export', and no {CONFIG} beside it), so the "
                       "class names and normalization are unknown")
    takes = model.metadata.get(nc_onnx.INPUT_KEY, nc_onnx.INPUT_NORMALIZED)  # files of older exports: normalised
    if takes not in (nc_onnx.INPUT_PIXELS, nc_onnx.INPUT_NORMALIZED):
        raise CLIError(f"{path}: metadata {nc_onnx.INPUT_KEY}={takes!r} is neither {nc_onnx.INPUT_PIXELS!r} nor "
                       f"{nc_onnx.INPUT_NORMALIZED!r}, so what to feed the model is unknown")
    model.eval()
    return Loaded(model, config, path.parent if has_config(path.parent) else None, str(path), None, onnx=True,
                  pixels=takes == nc_onnx.INPUT_PIXELS)


#: What a model that a file describes can fail with while it runs (numcnn.onnx.GraphError is a ValueError).
RUN_ERRORS = (ValueError, TypeError, IndexError, ArithmeticError, MemoryError, RecursionError)


def run_model(loaded: Loaded, fn, *args):
    """``fn(*args)`` (evaluate, predict): an ONNX graph that fails while running (a shape that does not fit, an
    impossible Reshape, a size over the limit, an input dtype other than float32) is a one-line CLIError naming the
    file; a numcnn model's failure is a bug and keeps its traceback."""
    if not loaded.onnx:
        return fn(*args)
    try:
        return fn(*args)
    except RUN_ERRORS as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise CLIError(f"{loaded.source}: the ONNX graph fails on the run's images: {msg}") from None


def check_outputs(loaded: Loaded, out, n: int) -> None:
    """The model's output for ``n`` images must be one float (n, len(classes)) array: one score per class name.
    Anything else is refused, so no score is ever printed under another class's name."""
    classes = loaded.config["dataset"]["classes"]
    shape = getattr(out, "shape", None)
    if isinstance(out, (tuple, list)):
        got = f"{len(out)} outputs"
    elif shape is None or len(shape) != 2 or shape[0] != n:
        got = f"an output of shape {tuple(shape) if shape is not None else type(out).__name__} for {n} images"
    elif shape[1] != len(classes):
        got = f"{shape[1]} scores per image"
    else:
        return
    raise CLIError(f"{loaded.source}: the model gives {got}, but its run config names {len(classes)} classes "
                   f"({', '.join(classes[:4])}{', ...' if len(classes) > 4 else ''}); refusing to report scores "
                   "under class names they may not belong to")


def probe(loaded: Loaded, x: np.ndarray | None = None) -> None:
    """Run the model once on ``x`` (default: two blank images of the run's shape) and check its output
    (:func:`check_outputs`), so that a model which cannot run on the run's data says so before any is read."""
    if x is None:
        x = np.zeros((2, *loaded.config["dataset"]["image_shape"]), dtype=np.float32)
    with no_grad():
        out = run_model(loaded, loaded.model, Tensor(x))
    check_outputs(loaded, out, len(x))


# -- data ----------------------------------------------------------------------------------------------------


def load_dataset(name: str, root: str | None, train: bool, download: bool = False):
    """MNIST / FashionMNIST with the data layer's own message (which lists where it looked and the options)
    turned into a CLIError, plus the command-line spelling of those options."""
    if name not in DATASETS:
        raise CLIError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    try:
        return DATASETS[name](root=root, train=train, download=download)
    except (FileNotFoundError, RuntimeError) as e:
        hint = "On the command line: --data-dir DIR (a folder holding the files), or --download"
        raise CLIError(f"{e}\n{hint}") from None
    except ValueError as e:  # a corrupt or truncated file: the message names it
        raise CLIError(str(e)) from None


def split_sizes(n: int, limit: int | None) -> tuple[int, int]:
    """``(validation, training)`` image counts out of a training file of ``n`` images: 5,000 held out for
    validation (a tenth of the images used when that is fewer, at least one), the rest (or ``limit``) for training."""
    base = n if limit is None else min(limit, n)
    n_val = max(1, min(VAL_IMAGES, base // 10))
    n_train = n - n_val if limit is None else min(limit, n - n_val)
    if n_train < 1:
        raise CLIError(f"the training file has only {n} images: too few to hold out a validation set")
    return n_val, n_train


def split(train_file, seed: int, limit: int | None):
    """``(train subset, validation subset)`` of the training file, chosen by ``seed`` (the same seed, the
    same split: ``numcnn evaluate --split val`` finds the images training held out)."""
    n = len(train_file)
    n_val, n_train = split_sizes(n, limit)
    val, train, _ = random_split(train_file, [n_val, n_train, n - n_val - n_train], seed=seed)
    return train, val


def eval_loader(dataset, config: dict, pixels: bool = False) -> DataLoader:
    """Batches of EVAL_BATCH images normalised as in training; ``pixels``: left in [0, 1] (for an ONNX file with
    the normalization in its graph, so that it is not applied twice)."""
    norm = config["normalization"]
    return DataLoader(dataset, batch_size=EVAL_BATCH,
                      transform=None if pixels else Normalize(norm["mean"], norm["std"]))


def eval_split(config: dict, split_name: str, root: str | None, download: bool = False):
    """The dataset of ``split_name`` ("test", "val" or "train") for a run's config."""
    ds = config["dataset"]
    root = root if root is not None else ds.get("root")
    if split_name == "test":
        return load_dataset(ds["name"], root, train=False, download=download)
    train_file = load_dataset(ds["name"], root, train=True, download=download)
    train, val = split(train_file, config["seed"], ds.get("limit"))
    return val if split_name == "val" else train
