"""``numcnn bench``: numcnn against PyTorch on this CPU (the benchmark itself lives in numcnn.bench)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from .. import bench

    p = sub.add_parser("bench", help="time numcnn against PyTorch: layers, training steps, inference, memory",
                       description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import bench

    return bench.run(args)
