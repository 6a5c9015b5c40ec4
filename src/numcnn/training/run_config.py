"""A run folder's config.json (format numcnn-run/1, written by ``numcnn train``) read back: its JSON Schema, the
bounds that keep a damaged or forged one from allocating more than a run of its kind could ever need, and the model
it describes with its trained weights. The command line and ``numcnn explore`` read runs through this module; a
damaged file is a :class:`RunError` (a ValueError) in one line naming the file, the field, the value and what was
expected there.

The bounds are generous for what numcnn trains (28x28 gray images, 10 classes) and far below what would take
memory before anything could fail: an image of at most 4M values, at most 10,000 classes (and exactly as many as
the class names), at most 64 channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import models, optim
from .._schema import SchemaError, array, boolean, check, integer, nullable, number, obj, one_of, read_json, string
from ..data import MNIST, FashionMNIST
from ..serialization import load
from .checkpoint import read_checkpoint
from .losses import LOSSES

FORMAT = "numcnn-run/1"
CONFIG, WEIGHTS, CHECKPOINT = "config.json", "model.safetensors", "checkpoint"
DATASETS = {"fashion-mnist": FashionMNIST, "mnist": MNIST}
OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "adagrad": optim.Adagrad, "adadelta": optim.Adadelta, "adamax": optim.Adamax, "nadam": optim.NAdam,
              "radam": optim.RAdam, "asgd": optim.ASGD}
SCHEDULERS = ("onecycle", "step", "cosine", "none")
MAX_CLASSES = 10_000
MAX_CHANNELS = 64
MAX_SIDE = 4096
MAX_IMAGE_VALUES = 1 << 22  # C*H*W of one image

#: Recipes write the optimizer's extra arguments (momentum, betas, ...): numbers, booleans, lists of numbers.
_KWARG = {"anyOf": [{"type": ["number", "boolean"]}, {"type": "array", "items": {"type": "number"}, "maxItems": 8}],
          "description": "a number, true/false or a short list of numbers"}

CONFIG_SCHEMA = obj({
    "format": {"const": FORMAT, "description": f'"{FORMAT}"'},
    "numcnn_version": string(100),
    "model": obj({
        "name": string(100),
        "in_channels": integer(1, MAX_CHANNELS),
        "num_classes": integer(1, MAX_CLASSES),
        "options": {"type": "object", "maxProperties": 100, "description": "an object (the model's options)"},
    }, required=["name"], what="an object (model name, channels, classes, options)"),
    "dataset": obj({
        "name": string(100),
        "root": nullable(string(4096)),
        "classes": array(string(200), 1, MAX_CLASSES, "class names (strings)"),
        "image_shape": array(integer(1, MAX_SIDE), 3, 3, f"sizes (channels, height, width), each 1 to {MAX_SIDE}"),
        "train_images": integer(0),
        "val_images": integer(0),
        "limit": nullable(integer(1)),
    }, required=["name", "classes", "image_shape"], what="an object (dataset name, classes, image shape)"),
    "normalization": obj({
        "mean": array(number(), 1, MAX_CHANNELS, "numbers, one per channel"),
        "std": array(number(0, exclusive_lo=True), 1, MAX_CHANNELS, "numbers > 0, one per channel"),
    }, required=["mean", "std"], what="an object (mean and std per channel)"),
    "seed": integer(0, (1 << 63) - 1),
    "recipe": obj({
        "optimizer": one_of(sorted(OPTIMIZERS)),
        "optimizer_kwargs": {"type": "object", "additionalProperties": _KWARG, "maxProperties": 20,
                             "description": "an object of optimizer arguments"},
        "lr": number(0, exclusive_lo=True),
        "scheduler": {"anyOf": [{"type": "null"}, {"enum": [s for s in SCHEDULERS if s != "none"]}],
                      "description": "null or one of " + ", ".join(f'"{s}"' for s in SCHEDULERS if s != "none")},
        "max_lr": nullable(number(0, exclusive_lo=True)),
        "batch_size": integer(1, 1 << 20),
        "epochs": integer(1, 1 << 20),
        "augment": boolean(),
        "weight_decay": number(0),
        "loss": one_of(sorted(LOSSES)),
    }, required=["optimizer", "optimizer_kwargs", "lr", "scheduler", "max_lr", "batch_size", "epochs", "augment",
                 "weight_decay", "loss"], what="an object (the training recipe)"),
    "autotune": boolean(),
    "command": string(100_000),
}, required=["format", "model", "dataset", "normalization", "seed", "recipe"], what="a run config (a JSON object)")


class RunError(ValueError):
    """A run folder, or a file in it, that cannot be read as what it should be; the message is one line."""


#: What a model viewer needs of a config (``numcnn explore`` on a hand-made model): no recipe, no seed.
MODEL_SCHEMA = {**CONFIG_SCHEMA, "required": ["format", "model", "dataset", "normalization"]}


def check_config(config, where: str, schema: dict = CONFIG_SCHEMA) -> dict:
    """``config`` when it is a valid run config (``schema``: CONFIG_SCHEMA, or MODEL_SCHEMA for a model's
    description alone); else a one-line RunError naming ``where``, the field, its value and what was expected."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise RunError(f"{where}: not a numcnn run config (format {got!r}, expected {FORMAT!r})")
    try:
        check(config, schema, where)
    except SchemaError as e:
        raise RunError(str(e)) from None
    model, ds, norm = config["model"], config["dataset"], config["normalization"]
    channels, h, w = ds["image_shape"]
    problems = []
    if channels * h * w > MAX_IMAGE_VALUES:
        problems.append(f"dataset.image_shape is {ds['image_shape']}, expected at most {MAX_IMAGE_VALUES:,} values "
                        "per image")
    if model.get("num_classes", len(ds["classes"])) != len(ds["classes"]):
        problems.append(f"model.num_classes is {model['num_classes']}, expected {len(ds['classes'])} (one per class "
                        "name in dataset.classes)")
    if model.get("in_channels", channels) != channels:
        problems.append(f"model.in_channels is {model['in_channels']}, expected {channels} (dataset.image_shape)")
    if not len(norm["mean"]) == len(norm["std"]) == channels:
        problems.append(f"normalization has {len(norm['mean'])} means and {len(norm['std'])} stds, expected one "
                        f"of each per channel ({channels})")
    if problems:
        raise RunError(f"{where}: {problems[0]}")
    return config


def read_config(folder: Path) -> dict:
    """The checked config.json of run folder ``folder``."""
    path = Path(folder) / CONFIG
    if not Path(folder).exists():
        raise RunError(f"{folder}: no such folder")
    if not path.is_file():
        raise RunError(f"{folder} is not a numcnn run folder (no {CONFIG}; runs are made by 'numcnn train')")
    try:
        return check_config(read_json(path), str(path))
    except SchemaError as e:
        raise RunError(str(e)) from None


def build_model(config: dict):
    """The (untrained) zoo model a checked run config names."""
    m = config["model"]
    try:
        return models.get(m["name"], in_channels=m.get("in_channels", 1), num_classes=m.get("num_classes", 10),
                          **m.get("options", {}))
    except (ValueError, TypeError) as e:
        raise RunError(f"cannot build the run's model: {e}") from None


def checkpoint_config(folder: Path) -> tuple[dict, dict]:
    """``(config, state)`` of checkpoint ``folder`` (read_checkpoint's state); its state.json carries the run config
    under "extra", else the run folder around it has one."""
    try:
        state = read_checkpoint(folder)
    except (FileNotFoundError, ValueError) as e:
        raise RunError(str(e)) from None
    config = (state.get("extra") or {}).get("config")
    if config is None and (folder.parent / CONFIG).is_file():
        config = read_config(folder.parent)
    if config is None:
        raise RunError(f"{folder}: the checkpoint does not say which model it holds (no run config)")
    return check_config(config, str(folder / "state.json")), state


@dataclass
class TrainedRun:
    model: object  # in eval mode, with the trained weights
    config: dict
    run_folder: Path | None  # None for a checkpoint folder outside any run
    source: str  # what the weights were read from, for messages
    epoch: int | None  # the checkpoint's epoch; None for model.safetensors


def load_trained_run(path) -> TrainedRun:
    """The trained model of a run folder (its model.safetensors, else its last checkpoint), a checkpoint folder or a
    run's ``.safetensors`` file, with the run config."""
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise RunError(f"{path}: expected a run folder, a checkpoint folder or a run's .safetensors file")
        config, run_folder, weights, epoch = read_config(path.parent), path.parent, path, None
        state_dict = _load_weights(weights)
    elif (path / "state.json").is_file():
        config, state = checkpoint_config(path)
        state_dict, weights, epoch = state["model"], path, state.get("epoch")
        run_folder = path.parent if (path.parent / CONFIG).is_file() else None
    else:
        config, run_folder = read_config(path), path
        if (path / WEIGHTS).is_file():
            weights, epoch = path / WEIGHTS, None
            state_dict = _load_weights(weights)
        elif (path / CHECKPOINT / "state.json").is_file():  # an unfinished run: its last checkpoint
            _, state = checkpoint_config(path / CHECKPOINT)
            state_dict, weights, epoch = state["model"], path / CHECKPOINT, state.get("epoch")
        else:
            raise RunError(f"{path}: the run has no {WEIGHTS} and no checkpoint yet (did training start?)")
    model = build_model(config)
    try:
        model.load_state_dict(state_dict)
    except (KeyError, ValueError, RuntimeError) as e:
        msg = str(e).replace("\n\t", "; ").replace("\n", "; ")
        raise RunError(f"{weights}: the weights do not fit model {config['model']['name']!r}: {msg}") from None
    model.eval()
    return TrainedRun(model, config, run_folder, str(weights), epoch)


def _load_weights(path: Path) -> dict:
    try:
        return load(path)
    except (OSError, ValueError) as e:
        raise RunError(str(e)) from None
