"""``numcnn predict``: the top classes of a trained model for image files (photos or drawings)."""

from __future__ import annotations

import argparse
import os

import numpy as np

from ..data import Normalize, ToTensor
from ..data.photo import load_photo
from ..training import predict
from . import numerics, runs
from .argtypes import positive_int
from .errors import CLIError

# tests/cli/test_commands.py::test_predict_top3_on_a_png checks the default against a stretched reference;
# switch this to "dataset" together with that test.
DEFAULT_FIT = "dataset"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict", help="top-3 classes of a trained model for image files",
        description="Classify PNG/JPEG images with a trained run. Each image is converted to gray; with --fit "
                    "dataset it is prepared the way the run's dataset was made, keeping the aspect ratio: the "
                    "uniform border is trimmed, the object scaled so that its longer side fits (28 px for "
                    "Fashion-MNIST; 20 px for MNIST, then centred by centre of mass in 28x28), centred and padded "
                    "with the background (--fit stretch resizes the whole image to 28x28 instead). It is inverted "
                    "when it is dark-on-light (a bright border), as the datasets are light-on-dark. With "
                    "--prepared-dir DIR, each prepared 28x28 image is saved as DIR/<IMAGE's name>.prepared.png and "
                    "its path printed after the classes, so you can see what the model saw. Then it is normalised "
                    "as in training (an .onnx file whose metadata says it takes "
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
    p.add_argument("--fit", choices=("dataset", "stretch"), default=DEFAULT_FIT,
                   help="'dataset': trim, fit the longer side, centre and pad as the run's dataset was made; "
                        f"'stretch': resize the whole image to 28x28, ignoring its aspect ratio "
                        f"(default: {DEFAULT_FIT})")
    p.add_argument("--prepared-dir", metavar="DIR", default=None,
                   help="save each prepared 28x28 image as DIR/<IMAGE's name>.prepared.png and print its path "
                        "(default: not saved)")
    p.set_defaults(run=run)


def _prepare(args, path: str, shape: tuple[int, int], fit: str) -> tuple[np.ndarray, bool, str | None]:
    """Load and prepare one image, save it with --prepared-dir: (image, inverted, where it was saved or None)."""
    from PIL import Image

    try:
        image, inverted = load_photo(path, shape, invert=args.invert, fit=fit)
    except (OSError, ValueError, ImportError) as e:
        raise CLIError(str(e)) from None
    if args.prepared_dir is None:
        return image, inverted, None
    folder = args.prepared_dir
    saved = os.path.join(folder, os.path.basename(path) + ".prepared.png")
    try:
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image, mode="L").save(saved)
    except OSError as e:
        raise CLIError(f"cannot save the prepared image {saved}: {e.strerror or e}") from None
    return image, inverted, saved


def run(args) -> int:
    loaded = runs.load_trained(args.run_path)
    numerics.warn_weights("predict", loaded)  # a diverged run's weights: one line, not NumPy's warnings
    config = loaded.config
    classes = config["dataset"]["classes"]
    channels, h, w = config["dataset"]["image_shape"]
    if channels != 1:
        raise CLIError(f"the run's model takes {channels}-channel images; predict reads gray images only")
    fit = "stretch" if args.fit == "stretch" else ("mnist" if config["dataset"].get("name") == "mnist"
                                                   else "fashion-mnist")
    images, notes, saved = [], [], []
    for path in args.images:
        image, inverted, where = _prepare(args, path, (h, w), fit)
        images.append(image)
        saved.append(where)
        notes.append(" (inverted: dark on a light background)" if inverted else "")
    batch = ToTensor()(np.stack(images)[:, None])
    if not loaded.pixels:  # an ONNX file with the normalization in its graph takes the pixels themselves
        norm = config["normalization"]
        batch = Normalize(norm["mean"], norm["std"])(batch)
    runs.probe(loaded, batch)  # one score per class name, or no scores printed at all
    probs = runs.run_model(loaded, predict, loaded.model, batch)
    k = min(args.top, len(classes))
    width = max(len(c) for c in classes)
    for path, note, where, p in zip(args.images, notes, saved, probs):
        print(f"{path}{note}")
        for i in np.argsort(-p, kind="stable")[:k]:
            print(f"  {classes[i]:<{width}}  {p[i]:.4f}")
        if where is not None:
            print(f"  prepared image: {where}")
    return 0
