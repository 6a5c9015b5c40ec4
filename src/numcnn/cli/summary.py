"""``numcnn summary``: a model's layer table (output shape, parameters, multiply-accumulates) and totals."""

from __future__ import annotations

from .. import models
from ..utils import summary
from .argtypes import add_model_options, positive_int
from .errors import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "summary", help="layer table of a model: output shapes, parameters, MACs",
        description="Print a model's layers with their output shape, parameter count and multiply-accumulates per "
                    "image (numcnn.utils.summary), and the totals.")
    p.add_argument("--model", default="convnet", metavar="NAME",
                   help=f"one of: {', '.join(models.names())} (default: convnet)")
    add_model_options(p)
    p.add_argument("--in-channels", type=positive_int, default=1, metavar="C", help="input channels (default: 1)")
    p.add_argument("--num-classes", type=positive_int, default=10, metavar="K", help="classes (default: 10)")
    p.add_argument("--size", type=positive_int, default=28, metavar="S", help="input height and width (default: 28)")
    p.set_defaults(run=run)


def run(args) -> int:
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
