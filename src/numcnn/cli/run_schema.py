"""The JSON Schema of a run's config.json (format numcnn-run/1), the bounds that keep a damaged or forged one from
allocating more than a run of its kind could ever need, and the check every command runs on it when it reads it.

The bounds are generous for what numcnn trains (28x28 gray images, 10 classes) and far below what would take
memory before anything could fail: an image of at most 4M values, at most 10,000 classes (and exactly as many as
the class names), at most 64 channels.
"""

from __future__ import annotations

from .._schema import SchemaError, array, boolean, check, integer, nullable, number, obj, one_of, string
from ..training.losses import LOSSES
from .errors import CLIError
from .recipe import OPTIMIZERS, SCHEDULERS

FORMAT = "numcnn-run/1"
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


def check_config(config, where: str) -> dict:
    """``config`` when it is a valid run config; else a one-line CLIError naming ``where``, the field, its value and
    what was expected there."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        got = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise CLIError(f"{where}: not a numcnn run config (format {got!r}, expected {FORMAT!r})")
    try:
        check(config, CONFIG_SCHEMA, where)
    except SchemaError as e:
        raise CLIError(str(e)) from None
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
        raise CLIError(f"{where}: {problems[0]}")
    return config
