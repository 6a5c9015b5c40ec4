"""``numcnn predict``: the top classes of a trained model for image files (photos or drawings)."""

from __future__ import annotations

import argparse

import numpy as np

from ..data import Normalize, ToTensor
from ..data.photo import load_photo
from ..training import predict
from . import numerics, runs
from .argtypes import positive_int
from .errors import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="top-3 classes of a trained model for image files",
        description="Classify PNG/JPEG images with a trained run. Each image is converted to gray, resized to the "
                    "dataset's size (28x28) and inverted when it is dark-on-light (a bright border), as the datasets "
                    "are light-on-dark; then normalised as in training (an .onnx file whose metadata says it takes "
                    "pixels gets them in [0, 1], its graph normalises). The model must give one score per class "
                    "name of its run config, else predict refuses rather than print scores under wrong names.")
    p.add_argument("run_path", metavar="RUN",
                   help="a run folder, a checkpoint folder, a run's .safetensors file or an .onnx file from "
                        "'numcnn export'")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (anything Pillow reads: PNG, JPEG, ...)")
    p.add_argument("--top", type=positive_int, default=3, metavar="K", help="how many classes to list (default: 3)")
    p.add_argument("--invert", action=argparse.BooleanOptionalAction, default=None,
                   help="force (or, with --no-invert, forbid) inverting the images (default: when the border is "
                        "bright)")
    p.set_defaults(run=run)


def run(args) -> int:
    loaded = runs.load_trained(args.run_path)
    numerics.warn_weights("predict", loaded)  # a diverged run's weights: one line, not NumPy's warnings
    config = loaded.config
    classes = config["dataset"]["classes"]
    channels, h, w = config["dataset"]["image_shape"]
    if channels != 1:
        raise CLIError(f"the run's model takes {channels}-channel images; predict reads gray images only")
    images, notes = [], []
    for path in args.images:
        try:
            image, inverted = load_photo(path, (h, w), invert=args.invert)
        except (OSError, ValueError, ImportError) as e:
            raise CLIError(str(e)) from None
        images.append(image)
        notes.append(" (inverted: dark on a light background)" if inverted else "")
    batch = ToTensor()(np.stack(images)[:, None])
    if not loaded.pixels:  # an ONNX file with the normalization in its graph takes the pixels themselves
        norm = config["normalization"]
        batch = Normalize(norm["mean"], norm["std"])(batch)
    runs.probe(loaded, batch)  # one score per class name, or no scores printed at all
    probs = runs.run_model(loaded, predict, loaded.model, batch)
    k = min(args.top, len(classes))
    width = max(len(c) for c in classes)
    for path, note, p in zip(args.images, notes, probs):
        print(f"{path}{note}")
        for i in np.argsort(-p, kind="stable")[:k]:
            print(f"  {classes[i]:<{width}}  {p[i]:.4f}")
    return 0
