"""``numcnn evaluate``: accuracy, a per-class table and confusion.png for a trained run or a checkpoint."""

from __future__ import annotations

from pathlib import Path

from ..training import evaluate
from ..training.losses import get_loss
from . import figures, numerics, runs
from .errors import CLIError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy, per-class table and confusion matrix of a trained run",
        description="Evaluate a trained model on a split of its dataset: loss, accuracy, a per-class table and "
                    "confusion.png. The last line printed is '<split> accuracy: 0.XXXX'.")
    p.add_argument("run_path", metavar="RUN_OR_CHECKPOINT",
                   help="a run folder (its model.safetensors, else its checkpoint/), a checkpoint folder, a run's "
                        ".safetensors file, or an .onnx file from 'numcnn export' (fed pixels in [0, 1] or normalised "
                        "images, as its metadata says)")
    p.add_argument("--split", choices=("test", "val", "train"), default="test",
                   help="test: the test file (default); val: the images training held out; train: the images it "
                        "trained on")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the dataset's files (default: the one the run was trained with, else the "
                        "usual places)")
    p.add_argument("--download", action="store_true", help="download the dataset when it is not found")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the folder confusion.png goes to, made if missing; not an existing file (default: the run "
                        "folder, else the current folder)")
    p.set_defaults(run=run)


def run(args) -> int:
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out}: is a file, not a folder: give a folder for confusion.png")
    loaded = runs.load_trained(args.run_path)
    numerics.warn_weights("evaluate", loaded)  # a diverged run's weights: one line, not NumPy's warnings
    config = loaded.config
    classes = config["dataset"]["classes"]
    loss = get_loss(config["recipe"]["loss"])  # a known one: the run config's schema says so
    runs.probe(loaded)  # a model that cannot run, or gives a score per class for other classes: refused here
    dataset = runs.eval_split(config, args.split, args.data_dir, args.download)
    labels = len(runs.DATASETS[config["dataset"]["name"]].classes)
    if labels != len(classes):
        raise CLIError(f"{loaded.source}: its run config names {len(classes)} classes, but the labels of "
                       f"{config['dataset']['name']} are {labels} classes: the accuracy would be meaningless")
    res = runs.run_model(loaded, evaluate, loaded.model, runs.eval_loader(dataset, config, loaded.pixels), loss,
                         len(classes))
    epoch = f", checkpoint of epoch {loaded.epoch}" if loaded.epoch is not None else ""
    print(f"model: {config['model']['name']} from {loaded.source}{epoch}")
    print(f"data: {config['dataset']['name']}, {args.split} split, {res.n:,} images")
    width = max(len("class"), *(len(c) for c in classes))
    print(f"{'class':<{width}}  {'images':>7}  {'correct':>7}  {'accuracy':>8}")
    support, correct = res.confusion.sum(axis=1), res.confusion.diagonal()
    for name, n, c, acc in zip(classes, support, correct, res.per_class_accuracy):
        print(f"{name:<{width}}  {int(n):>7}  {int(c):>7}  {'-' if n == 0 else f'{acc:.4f}':>8}")
    out = Path(args.out) if args.out is not None else (loaded.run_folder or Path("."))
    if figures.available():
        name = "confusion.png" if args.split == "test" else f"confusion-{args.split}.png"
        figures.confusion(res.confusion, classes, out / name,
                          title=f"{config['model']['name']} on {config['dataset']['name']} ({args.split})")
        print(f"wrote {out / name}")
    else:
        print(f"(no confusion matrix image: {figures.MISSING})")
    print(f"{args.split} loss: {res.loss:.4f}")
    print(f"{args.split} accuracy: {res.accuracy:.4f}")
    return 0
