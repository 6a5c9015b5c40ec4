"""The ``numcnn`` command line: train, evaluate, predict, summary, plot. No math here: it parses arguments,
builds objects from the library, calls fit / evaluate / predict, writes the run folder and prints.

Entry point: :func:`numcnn.cli.main.main` (the ``numcnn`` console script and ``python -m numcnn``).
"""

from .errors import CLIError

__all__ = ["CLIError", "main"]


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    from .main import main as _main

    return _main(argv)
