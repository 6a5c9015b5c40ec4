"""``numcnn plot``: the textbook's pictures as PNGs: activation functions and their derivatives, a run's learned
first-layer filters, and one image's feature maps after every convolution."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data import Normalize, ToTensor
from ..data.photo import load_photo
from ..utils import visualize
from . import figures, runs
from .errors import CLIError

KINDS = ("activations", "filters", "feature-maps")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plot", help="PNGs of activation functions, learned filters, feature maps",
        description="activations: ReLU, LeakyReLU, Sigmoid, Tanh, ELU, GELU and their derivatives (from numcnn's "
                    "autograd) -> activations.png. filters: the first convolution's learned filters of RUN -> "
                    "filters.png. feature-maps: the output of every convolution of RUN for one image (--image, "
                    "else the first test image) -> feature-maps-NN-LAYER.png, one file per convolution. "
                    "Every kind writes into the same folder: --out DIR if given, else RUN's run folder/plots "
                    "when a RUN is given (for activations too), else ./plots; each file written is printed.")
    p.add_argument("kind", choices=KINDS, help="what to draw")
    p.add_argument("run_path", metavar="RUN", nargs="?", default=None,
                   help="a run folder, checkpoint folder or run .safetensors file (needed by filters and "
                        "feature-maps; optional for activations, where it only decides the output folder)")
    p.add_argument("--image", default=None, metavar="PATH",
                   help="feature-maps: an image file (default: the first test image of the run's dataset)")
    p.add_argument("--data-dir", default=None, metavar="DIR", help="feature-maps without --image: the dataset folder")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder, for every kind (default: RUN/plots with a RUN, else ./plots)")
    p.set_defaults(run=run)


def out_folder(out: str | None, loaded) -> Path:
    """The one rule for every kind: --out DIR, else the run folder's plots/ (for a checkpoint folder or a weights
    file, the folder holding the run's config.json), else ./plots (no RUN, or a RUN outside any run folder)."""
    if out:
        return Path(out)
    if loaded is not None and loaded.run_folder is not None:
        return Path(loaded.run_folder) / "plots"
    return Path("plots")


def _wrote(path: Path) -> Path:
    print(f"wrote {path}")
    return path


def run(args) -> int:
    if args.kind != "activations" and args.run_path is None:
        raise CLIError(f"plot {args.kind} needs a RUN (a trained run folder)")
    loaded = runs.load_trained(args.run_path) if args.run_path is not None else None
    out = out_folder(args.out, loaded)
    if args.kind == "activations":
        x = np.linspace(-4, 4, 801, dtype=np.float32)
        curves = visualize.activation_curves(x)
        labels = {name: label for name, (label, _) in visualize.ACTIVATIONS.items()}
        _wrote(figures.activations(x, curves, labels, out / "activations.png"))
        return 0
    name = loaded.config["model"]["name"]
    if args.kind == "filters":
        conv = visualize.first_conv(loaded.model)
        w = conv.weight.numpy()  # (out, in, kh, kw)
        title = f"{name}: first convolution, {w.shape[0]} filters {w.shape[2]}x{w.shape[3]}"
        if w.shape[1] > 1:
            title += f" (input channel 0 of {w.shape[1]})"
        _wrote(figures.image_grid(w[:, 0], out / "filters.png", title, cmap="bwr", symmetric=True))
        return 0
    x, label = _image(args, loaded.config)
    written = [_wrote(figures.image_grid(x[0], out / "feature-maps-00-input.png", f"input: {label}"))]
    for i, (layer, fmap) in enumerate(visualize.conv_feature_maps(loaded.model, x), 1):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", layer)
        written.append(_wrote(figures.image_grid(
            fmap[0], out / f"feature-maps-{i:02d}-{safe}.png",
            f"{name}: {layer}, {fmap.shape[1]} maps {fmap.shape[2]}x{fmap.shape[3]}", cmap="viridis")))
    print(f"{len(written)} files in {out}: the input and {len(written) - 1} convolution(s)")
    return 0


def _image(args, config: dict) -> tuple[np.ndarray, str]:
    """One normalised image (1, C, H, W) float32 and a description."""
    channels, h, w = config["dataset"]["image_shape"]
    if args.image is not None:
        if channels != 1:
            raise CLIError(f"the run's model takes {channels}-channel images; --image reads gray images only")
        try:
            image, inverted = load_photo(args.image, (h, w))
        except (OSError, ValueError, ImportError) as e:
            raise CLIError(str(e)) from None
        x, label = image[None, None], args.image + (" (inverted)" if inverted else "")
    else:
        test = runs.eval_split(config, "test", args.data_dir)
        x = test.data[:1]
        x = x[:, None] if x.ndim == 3 else x
        label = f"test image 0 ({config['dataset']['classes'][int(test.targets[0])]})"
    norm = config["normalization"]
    return Normalize(norm["mean"], norm["std"])(ToTensor()(x)), label
