"""``numcnn``: the argparse front end. Each subcommand module gives ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import difflib
import errno
import os
import re
import sys

from .. import __version__
from ..training.run_config import RunError
from .argtypes import typed_model_options
from .errors import CLIError
from .numerics import quiet_numpy

DESCRIPTION = """\
Train and use convolutional networks written in NumPy.

  numcnn train                        ConvNet on Fashion-MNIST, 3 epochs, its default recipe
  numcnn evaluate runs/convnet-fashion-mnist
  numcnn predict runs/convnet-fashion-mnist shoe.jpg
  numcnn export runs/convnet-fashion-mnist convnet.onnx
  numcnn summary --model resnet
  numcnn plot activations --out plots
  numcnn bench --out bench            numcnn against PyTorch, side by side
  numcnn explore runs/convnet-fashion-mnist --open    see inside the model in the browser
  numcnn run train.py --epochs 2      a PyTorch script as written (import torch gives numcnn)

Run 'numcnn COMMAND --help' for the options of a command."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit status 2), pointing at --help, with a "did you
    mean" for a mistyped choice. It takes no abbreviation of a long option (``--epoch`` is not ``--epochs``): nor
    do the subcommands' parsers, which ``add_subparsers`` makes of the same class."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}{_choice_hint(self, message)} (see '{self.prog} --help')\n")


def _choice_hint(parser: argparse.ArgumentParser, message: str) -> str:
    """"; did you mean 'train'?" for argparse's "invalid choice: 'trian'" (a command or an option's choice)."""
    m = re.search(r"invalid choice: '?([^'\s,]+)", message)
    if not m or "did you mean" in message or "maybe you meant" in message:
        return ""
    choices = [str(c) for a in parser._actions if a.choices for c in a.choices]
    close = difflib.get_close_matches(m.group(1), choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _refuse_extras(parser: Parser, args: argparse.Namespace, extras: list[str]) -> None:
    """Exit 2 for words no parser took, said by the command's parser (so the hint is 'numcnn COMMAND --help'),
    with "did you mean --epochs?" for the closest option of the command."""
    target = parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            target = action.choices[getattr(args, action.dest)]
    options = [s for a in target._actions for s in a.option_strings]
    message = f"unrecognized arguments: {' '.join(extras)}"
    for word in extras:
        close = difflib.get_close_matches(word.split("=")[0], options, n=1) if word.startswith("-") else []
        if close:
            message += f"; did you mean {close[0]}?"
            break
    target.error(message)


# -- the parser ------------------------------------------------------------------------------------------------


def build_parser() -> Parser:
    from . import bench, evaluate, explore, export, plot, predict, run, summary, train

    parser = Parser(prog="numcnn", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"numcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for module in (train, evaluate, predict, export, summary, plot, bench, explore, run):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the subcommand and return the exit status:
    0 success, 1 training diverged, 2 a usage error (one line on stderr), 130 interrupted (Ctrl-C), 143 stopped by
    SIGTERM (numcnn train; both keep the last checkpoint and print how to resume).

    A reader that closes stdout early (``numcnn summary --model resnet | head -3``) ends the command quietly with
    status 0: what is left to print is dropped, without a BrokenPipeError traceback. 0 and not 1 (nor SIGPIPE's
    141), as the reader took all it wanted: ``set -o pipefail`` scripts do not fail on it."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a broken pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return 0


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so that flushing it at exit writes nowhere instead of failing again
    (Python's documented recipe for SIGPIPE; see the signal module's notes)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (e.g. captured in tests)
        pass


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            _refuse_extras(parser, args, extras)
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else 2
    args.argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _type_model_options(args)
        with quiet_numpy():  # no raw RuntimeWarning: the commands warn about NaN/Inf in their own words
            return _end_job(args.run(args))
    except (CLIError, RunError) as e:  # RunError: a run folder's file that cannot be read (training/run_config.py)
        print(f"numcnn {args.command}: error: {_rank_prefix()}{e}", file=sys.stderr)
        return _end_job(2)
    except KeyboardInterrupt:
        print(f"numcnn {args.command}: interrupted", file=sys.stderr)
        return _end_job(130)
    except OSError as e:
        line = _os_error_line(e)
        if line is None:
            raise
        print(f"numcnn {args.command}: error: {_rank_prefix()}{line}", file=sys.stderr)
        return _end_job(2)


# errnos that only a write gives: "cannot write PATH" even when the error did not come through atomic_write
_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _os_error_line(e: OSError) -> str | None:
    """One line for an OSError that names a file (a write: "cannot write PATH: No space left on device"), or None
    (no file named: a bug, left to show its traceback)."""
    cause = e.strerror or str(e)
    path = getattr(e, "write_path", None)
    if path is None and e.errno in _WRITE_ERRNOS and e.filename is not None:
        path = e.filename
    if path is not None:
        return f"cannot write {os.fsdecode(path)}: {cause}"
    if e.filename is not None:
        return f"{os.fsdecode(e.filename)}: {cause}"
    return f"cannot write: {cause}" if e.errno in _WRITE_ERRNOS else None


def _type_model_options(args: argparse.Namespace) -> None:
    """Read the ``-o KEY=VALUE`` values with the types of the model's options (CLIError when they do not fit).
    A resumed run without --model keeps the values read as JSON: train compares them with the run's own."""
    if getattr(args, "model_options", None) is None:
        return
    model = args.model or (None if getattr(args, "resume", False) else "convnet")
    args.model_options = list(typed_model_options(model, args.model_options).items())


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
