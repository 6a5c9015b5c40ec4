"""The options of ``numcnn train`` (its ``--help``): model, data, recipe overrides, run folder, execution."""

from __future__ import annotations

import argparse
import textwrap

from .. import models
from . import runs
from .argtypes import add_model_options, nonneg_float, nonneg_int, positive_float, positive_int
from .recipe import OPTIMIZERS, SCHEDULERS


def _recipes_epilog() -> str:
    lines = ["default recipes (explicit flags override their parts):"]
    for name in models.names():
        r = models.recipe(name)
        sched = f"onecycle to {r['max_lr']:g}" if r["scheduler"] == "onecycle" else "no schedule"
        kw = "".join(f", {k}={v}" for k, v in r["optimizer_kwargs"].items())
        lines.append(f"  {name:<10} {r['optimizer']} lr {r['lr']:g}{kw}, {sched}, batch {r['batch_size']}, "
                     f"{r['epochs']} epochs, weight decay {r['weight_decay']:g}, "
                     f"{'augment' if r['augment'] else 'no augment'}, loss {r['loss']}")
    lines += ["", "The run folder (--out) receives .numcnn-run (the marker: a numcnn run), config.json,",
              "model.safetensors, checkpoint/, metrics.csv, metrics.json and curves.png. While it trains, a lock",
              "(.numcnn-lock) refuses a second 'numcnn train' into the same folder. The last line printed is",
              "'test accuracy: 0.XXXX'.",
              "",
              "environment: NUMCNN_KERNELS=numpy|numba picks the kernels (default: numba, compiled, when installed;",
              "a resumed run keeps the kernels it started with), NUMCNN_MEMORY_BUDGET_MB the largest scratch array",
              "of one kernel call (default 8)."]
    return "\n".join(lines)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train", help="train a model (default: convnet on Fashion-MNIST, 3 epochs)",
        description=textwrap.fill(
            "Train a model of the zoo on MNIST or Fashion-MNIST with the model's default recipe. 5,000 training "
            "images (chosen by --seed; a tenth of --limit when that is fewer) are held out for validation after "
            "each epoch; inputs are normalised by the training split's mean and std; the test set is used once, "
            "at the end.", 79),
        epilog=_recipes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, metavar="NAME",
                   help=f"one of: {', '.join(models.names())} (default: convnet)")
    add_model_options(p)
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"one of: {', '.join(runs.DATASETS)} (default: fashion-mnist)")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the dataset's IDX files (default: $NUMCNN_DATA, ~/.cache/numcnn, "
                        "/usr/share/datasets/fashion-mnist)")
    p.add_argument("--download", action="store_true",
                   help="download the dataset (into --data-dir, else ~/.cache/numcnn) when it is not found")
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="epochs in total (default: the recipe's; with --resume, training continues up to N)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="N", help="default: the recipe's")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=None,
                   help="default: the recipe's (its extra arguments, e.g. SGD's momentum, are kept only when the "
                        "optimizer is the recipe's)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate; with the onecycle schedule, its peak (default: the recipe's)")
    p.add_argument("--momentum", type=nonneg_float, default=None, help="momentum of sgd or rmsprop")
    p.add_argument("--weight-decay", type=nonneg_float, default=None, help="L2 penalty (default: the recipe's)")
    p.add_argument("--scheduler", choices=SCHEDULERS, default=None,
                   help="onecycle: OneCycleLR peaking at --lr, stepped per batch; step: StepLR(step_size=1, "
                        "gamma=0.7) per epoch; cosine: CosineAnnealingLR over the epochs; none: constant "
                        "(default: the recipe's)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random crop with 2 pixels of padding, plus horizontal flips for Fashion-MNIST only "
                        "(default: the recipe's)")
    p.add_argument("--seed", type=nonneg_int, default=None,
                   help="seeds the initialisation, the validation split and the shuffling (default: 0)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="train on N images only, holding out N/10 for validation (quick runs, tests)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: runs/MODEL-DATASET)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last checkpoint, up to --epochs in total")
    group.add_argument("--force", action="store_true",
                       help="start over in an existing run folder: deletes the files numcnn wrote there (config, "
                            "weights, checkpoint, metrics, figures); refuses, deleting nothing, when the folder holds "
                            "any other file or is not a numcnn run folder")
    p.add_argument("--quiet", action="store_true", help="print only the final 'test accuracy' line")
    _add_execution_options(p)
    return p


def _add_execution_options(p) -> None:
    """How the run is carried out: MPI ranks, anomaly detection, convolution autotuning."""
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over the MPI ranks this command was started on (mpirun -np N numcnn "
                        "train --distributed ...; needs pip install 'numcnn[mpi]'): --batch-size stays the global "
                        "batch, split evenly over the ranks; only rank 0 prints and writes the run folder")
    p.add_argument("--detect-anomaly", action="store_true",
                   help="stop at the first operation whose output or gradient holds NaN/Inf, naming the operation, "
                        "the module path, the epoch and the batch (slow: for debugging)")
    p.add_argument("--autotune", action="store_true",
                   help="time the convolution algorithms (the fixed per-pass rule, im2col, rowshift) once for each new "
                        "layer shape and run "
                        "the fastest, like torch.backends.cudnn.benchmark (default: a fixed rule of the shapes). "
                        "The choices depend on the timings, so they are saved in the checkpoints and --resume reuses "
                        "them: a resumed run stays bit-identical. Kept in config.json: a resumed run keeps it")
    p.add_argument("--sync-bn", action="store_true",
                   help="with --distributed: BatchNorm layers normalise by the statistics of the global batch "
                        "(SyncBatchNorm) instead of each rank's share")
