"""``numcnn``: the argparse front end. Each subcommand module gives ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from .errors import CLIError

DESCRIPTION = """\
Train and use convolutional networks written in NumPy.

  numcnn train                        ConvNet on Fashion-MNIST, 3 epochs, its default recipe
  numcnn evaluate runs/convnet-fashion-mnist
  numcnn predict runs/convnet-fashion-mnist shoe.jpg
  numcnn export runs/convnet-fashion-mnist convnet.onnx
  numcnn summary --model resnet
  numcnn plot activations --out plots
  numcnn bench --out bench            numcnn against PyTorch, side by side

Run 'numcnn COMMAND --help' for the options of a command."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), pointing at --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# -- the parser ------------------------------------------------------------------------------------------------


def build_parser() -> Parser:
    from . import bench, evaluate, export, plot, predict, summary, train

    parser = Parser(prog="numcnn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"numcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in (train, evaluate, predict, export, summary, plot, bench):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return the exit status:
    0 success, 1 training diverged, 2 a usage error (one line on stderr), 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else 2
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return _end_job(args.run(args))
    except CLIError as e:
        print(f"numcnn {args.command}: error: {_rank_prefix()}{e}", file=sys.stderr)
        return _end_job(2)
    except KeyboardInterrupt:
        print(f"numcnn {args.command}: interrupted", file=sys.stderr)
        return _end_job(130)


def _rank_prefix() -> str:
    from ..distributed import comm

    return f"rank {comm.get_rank()} of {comm.get_world_size()}: " if comm.get_world_size() > 1 else ""


def _end_job(code: int) -> int:
    """In an MPI job (--distributed), a rank that fails alone would leave the others waiting in a collective
    forever: a failing rank ends the whole job (MPI_Abort) with its exit status."""
    from ..distributed import comm

    if code != 0 and comm.is_initialized() and comm.get_world_size() > 1:
        comm.get_comm().abort(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
