"""``numcnn export``: write a trained run's model as an ONNX file (with the run's config inside it).

By default the file takes what a user has -- pixels in [0, 1], (N, C, H, W) float32 -- and normalises them itself:
the graph starts with ``(x - mean) / std``, the run's normalization. ``--bare`` writes the network alone, which
expects normalised images as the model in numcnn does. The file's metadata says which (``numcnn.input``:
"pixels" or "normalized"), and ``numcnn evaluate`` / ``numcnn predict`` read it, so neither normalises twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import runs
from .errors import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a trained model as an ONNX file",
        description="Export a trained run (run folder, checkpoint folder or .safetensors file) to ONNX: eval mode, "
                    "dynamic batch dimension, the run's config.json stored in the file's metadata. By default the "
                    "file takes pixels in [0, 1], (batch, C, H, W) float32, and normalises them in its graph with "
                    "the run's mean and std; with --bare it is the network alone and expects (pixels - mean) / std. "
                    "The metadata entry numcnn.input says which ('pixels' or 'normalized'). The file runs in "
                    "onnxruntime and in 'numcnn predict' / 'numcnn evaluate', which feed it accordingly.")
    p.add_argument("run_path", metavar="RUN", help="a run folder, a checkpoint folder or a run's .safetensors file")
    p.add_argument("output", metavar="OUT.onnx", nargs="?", default=None,
                   help=f"the ONNX file to write, replaced atomically (default: {runs.ONNX_FILE} in the run folder); "
                        f"an existing folder gets {runs.ONNX_FILE} inside it")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 to 21 (default: 17)")
    p.add_argument("--bare", action="store_true",
                   help="write the bare network, without the input normalization: the file then expects images "
                        "already normalised with the run's mean and std (metadata numcnn.input=normalized)")
    p.add_argument("--fuse", action="store_true",
                   help="fold every BatchNorm into the convolution or linear layer before it (numcnn.nn.utils.fuse): "
                        "one node fewer per pair, the same outputs to float rounding")
    p.set_defaults(run=run)


def _output(args, loaded) -> Path:
    if args.output is not None:
        return Path(args.output) / runs.ONNX_FILE if Path(args.output).is_dir() else Path(args.output)
    if loaded.run_folder is None:
        raise CLIError(f"{args.run_path}: not inside a run folder, so there is no default output; give OUT.onnx")
    return loaded.run_folder / runs.ONNX_FILE


def run(args) -> int:
    try:
        from .. import onnx as nc_onnx
    except ImportError as e:
        raise CLIError(f"numcnn export needs the onnx package: pip install 'numcnn[onnx]' ({e})") from None
    if args.output is not None and not Path(args.output).is_dir() and not str(args.output).endswith(".onnx"):
        raise CLIError(f"{args.output}: the output file name should end in .onnx")
    loaded = runs.load_trained(args.run_path)
    if loaded.onnx:
        raise CLIError(f"{args.run_path} is already an ONNX file")
    output = _output(args, loaded)
    shape, norm = loaded.config["dataset"]["image_shape"], loaded.config["normalization"]
    example = np.zeros((1, *shape), dtype=np.float32)
    model = loaded.model
    if args.fuse:
        from ..nn.utils import fuse

        model = fuse(model)
    metadata = {runs.CONFIG_KEY: json.dumps(loaded.config)}
    if args.bare:
        metadata.update({nc_onnx.INPUT_KEY: nc_onnx.INPUT_NORMALIZED,
                         nc_onnx.NORMALIZATION_KEY: json.dumps({"mean": norm["mean"], "std": norm["std"]})})
    try:
        nc_onnx.export(model, example, output, opset=args.opset, metadata=metadata,
                       normalize=None if args.bare else (norm["mean"], norm["std"]))
    except OSError as e:
        raise CLIError(f"cannot write {output}: {e.strerror or e}") from None
    except (ValueError, TypeError) as e:
        raise CLIError(f"{output}: {e}") from None
    takes = ("normalised images ((pixels - mean) / std), the bare network" if args.bare else
             "pixels in [0, 1], normalised in the graph")
    print(f"wrote {output} (opset {args.opset}, input (batch, {', '.join(map(str, shape))}): {takes}, "
          f"{'BatchNorm folded, ' if args.fuse else ''}from {loaded.source})")
    return 0
