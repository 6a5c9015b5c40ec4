"""``numcnn export``: write a trained run's model as an ONNX file (with the run's config inside it)."""

from __future__ import annotations

import json

import numpy as np

from . import runs
from .errors import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="write a trained model as an ONNX file",
        description="Export a trained run (run folder, checkpoint folder or .safetensors file) to ONNX: eval mode, "
                    "dynamic batch dimension, the run's config.json stored in the file's metadata. The file runs in "
                    "onnxruntime and in 'numcnn predict' / 'numcnn evaluate'.")
    p.add_argument("run_path", metavar="RUN", help="a run folder, a checkpoint folder or a run's .safetensors file")
    p.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write (replaced atomically)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 to 21 (default: 17)")
    p.add_argument("--fuse", action="store_true",
                   help="fold every BatchNorm into the convolution or linear layer before it (numcnn.nn.utils.fuse): "
                        "one node fewer per pair, the same outputs to float rounding")
    p.set_defaults(run=run)


def run(args) -> int:
    try:
        from .. import onnx as nc_onnx
    except ImportError as e:
        raise CLIError(f"numcnn export needs the onnx package: pip install 'numcnn[onnx]' ({e})") from None
    if not str(args.output).endswith(".onnx"):
        raise CLIError(f"{args.output}: the output file name should end in .onnx")
    loaded = runs.load_trained(args.run_path)
    if loaded.onnx:
        raise CLIError(f"{args.run_path} is already an ONNX file")
    shape = loaded.config["dataset"]["image_shape"]
    example = np.zeros((1, *shape), dtype=np.float32)
    model = loaded.model
    if args.fuse:
        from ..nn.utils import fuse

        model = fuse(model)
    try:
        nc_onnx.export(model, example, args.output, opset=args.opset,
                       metadata={runs.CONFIG_KEY: json.dumps(loaded.config)})
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    print(f"wrote {args.output} (opset {args.opset}, input (batch, {', '.join(map(str, shape))}), "
          f"{'BatchNorm folded, ' if args.fuse else ''}from {loaded.source})")
    return 0
