"""``numcnn summary``: a model's layer table (output shape, parameters, multiply-accumulates) and totals."""

from __future__ import annotations

from .. import models
from ..utils import summary
from .argtypes import add_model_options, positive_int
from .errors import CLIError

# Bounds checked before the model or the dummy input is made: the model's weights grow with --in-channels and
# --num-classes, and the one forward summary runs (activations, im2col buffers) with in_channels x size x size.
# At the limits the forward stays under about 1 GB and a few seconds.
LIMITS = {"in_channels": 4096, "num_classes": 10_000, "size": 1024}
MAX_INPUT = 4 * 1024 * 1024  # in_channels * size * size: 4,194,304 values (e.g. 4 x 1024 x 1024, 4096 x 32 x 32)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "summary", help="layer table of a model: output shapes, parameters, MACs",
        description="Print a model's layers with their output shape, parameter count and multiply-accumulates per "
                    "image (numcnn.utils.summary), and the totals.")
    p.add_argument("--model", default="convnet", metavar="NAME",
                   help=f"one of: {', '.join(models.names())} (default: convnet)")
    add_model_options(p)
    p.add_argument("--in-channels", type=positive_int, default=1, metavar="C",
                   help=f"input channels, 1..{LIMITS['in_channels']} (default: 1)")
    p.add_argument("--num-classes", type=positive_int, default=10, metavar="K",
                   help=f"classes, 1..{LIMITS['num_classes']} (default: 10)")
    p.add_argument("--size", type=positive_int, default=28, metavar="S",
                   help=f"input height and width, 1..{LIMITS['size']} (default: 28); C x S x S at most {MAX_INPUT:,}")
    p.set_defaults(run=run)


def check_bounds(args) -> None:
    """Refuse sizes the summary cannot afford, before anything is allocated."""
    for key, limit in LIMITS.items():
        value = getattr(args, key)
        if not 1 <= value <= limit:
            raise CLIError(f"--{key.replace('_', '-')} {value} is out of range: allowed 1..{limit}")
    n = args.in_channels * args.size * args.size
    if n > MAX_INPUT:
        raise CLIError(f"--in-channels {args.in_channels} x --size {args.size} x {args.size} = {n:,} input values, "
                       f"more than the {MAX_INPUT:,} allowed (lower --size or --in-channels)")


def run(args) -> int:
    check_bounds(args)
    options = dict(args.model_options or [])
    try:
        model = models.get(args.model, in_channels=args.in_channels, num_classes=args.num_classes, **options)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None
    print(f"{args.model}: {models.describe(args.model)}")
    opts = ", ".join(f"{k}={v!r}" for k, v in {**models.options(args.model), **options}.items())
    print(f"options: {opts or 'none'}")
    try:
        summary(model, (args.in_channels, args.size, args.size))
    except ValueError as e:
        raise CLIError(f"{args.model} cannot take {args.size}x{args.size} inputs: {e}") from None
    return 0
