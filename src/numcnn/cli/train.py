"""``numcnn train``: build the model, data, optimizer and scheduler of a recipe, fit, save the run folder, test once."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np

from .. import __version__, manual_seed, models, optim
from ..autograd.anomaly import AnomalyError
from ..data import Compose, DataLoader, Normalize, RandomCrop, RandomHorizontalFlip
from ..data.stats import channel_stats
from ..nn.functional import conv_select
from ..serialization import save
from ..training import Callback, Checkpoint, TrainingDiverged, evaluate, fit, resume
from ..training.losses import get_loss
from . import figures, runs
from .argtypes import add_model_options, nonneg_float, nonneg_int, positive_float, positive_int
from .errors import CLIError

OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "adagrad": optim.Adagrad}
SCHEDULERS = ("onecycle", "step", "cosine", "none")
# Schedules whose shape depends on the planned number of epochs: a finished run cannot be extended bit for bit.
FIXED_LENGTH = ("onecycle", "cosine")
# Flags a resumed run must not change (the run folder's config.json decides them): flag -> where in the config.
KEPT_ON_RESUME = {"model": ("model", "name"), "dataset": ("dataset", "name"), "seed": ("seed",),
                  "limit": ("dataset", "limit")}


def _recipes_epilog() -> str:
    lines = ["default recipes (explicit flags override their parts):"]
    for name in models.names():
        r = models.recipe(name)
        sched = f"onecycle to {r['max_lr']:g}" if r["scheduler"] == "onecycle" else "no schedule"
        kw = "".join(f", {k}={v}" for k, v in r["optimizer_kwargs"].items())
        lines.append(f"  {name:<10} {r['optimizer']} lr {r['lr']:g}{kw}, {sched}, batch {r['batch_size']}, "
                     f"{r['epochs']} epochs, weight decay {r['weight_decay']:g}, "
                     f"{'augment' if r['augment'] else 'no augment'}, loss {r['loss']}")
    lines += ["", "The run folder (--out) receives config.json, model.safetensors, checkpoint/, metrics.csv,",
              "metrics.json and curves.png. The last line printed is 'test accuracy: 0.XXXX'."]
    return "\n".join(lines)


def add_parser(sub) -> None:
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
                       help="start over in an existing run folder (its run files are deleted)")
    p.add_argument("--quiet", action="store_true", help="print only the final 'test accuracy' line")
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
    p.set_defaults(run=run)


# -- the recipe ----------------------------------------------------------------------------------------------


def resolve_recipe(base: dict, args) -> dict:
    """The model's recipe with the explicit flags applied."""
    r = {**base, "optimizer_kwargs": dict(base.get("optimizer_kwargs") or {})}
    if args.optimizer is not None and args.optimizer != r["optimizer"]:
        r["optimizer"], r["optimizer_kwargs"] = args.optimizer, {}
    if args.momentum is not None:
        if r["optimizer"] not in ("sgd", "rmsprop"):
            raise CLIError(f"--momentum applies to sgd and rmsprop, not {r['optimizer']}")
        r["optimizer_kwargs"]["momentum"] = args.momentum
    if args.scheduler is not None:
        new = None if args.scheduler == "none" else args.scheduler
        if new == "onecycle" and r["scheduler"] != "onecycle":
            r["max_lr"] = r["lr"]
        elif new != "onecycle":
            r["max_lr"] = None
        r["scheduler"] = new
    if args.lr is not None:
        r["lr"] = args.lr
        if r["scheduler"] == "onecycle":
            r["max_lr"] = args.lr
    for flag in ("epochs", "batch_size", "weight_decay", "augment"):
        if getattr(args, flag) is not None:
            r[flag] = getattr(args, flag)
    return r


def build_optimizer(model, r: dict):
    cls = OPTIMIZERS.get(r["optimizer"])
    if cls is None:
        raise CLIError(f"unknown optimizer {r['optimizer']!r}; known: {', '.join(sorted(OPTIMIZERS))}")
    try:
        return cls(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"], **r["optimizer_kwargs"])
    except (TypeError, ValueError) as e:
        raise CLIError(f"cannot build the {r['optimizer']} optimizer: {e}") from None


def build_scheduler(opt, r: dict, steps_per_epoch: int):
    s = r["scheduler"]
    if s is None:
        return None
    if s == "onecycle":
        group = opt.param_groups[0]
        # Cycling the momentum needs one (Adam's beta1, SGD's momentum > 0); a plain SGD stays plain.
        cycle = "betas" in group or group.get("momentum", 0) > 0
        return optim.lr_scheduler.OneCycleLR(opt, max_lr=r["max_lr"], epochs=r["epochs"],
                                             steps_per_epoch=steps_per_epoch, cycle_momentum=cycle)
    if s == "step":
        return optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    if s == "cosine":
        return optim.lr_scheduler.CosineAnnealingLR(opt, T_max=r["epochs"])
    raise CLIError(f"unknown scheduler {s!r}; known: {', '.join(SCHEDULERS)}")


def train_transform(config: dict, augment: bool) -> Compose:
    norm = config["normalization"]
    steps = []
    if augment:
        _, h, w = config["dataset"]["image_shape"]
        steps.append(RandomCrop((h, w), padding=2))
        if config["dataset"]["name"] == "fashion-mnist":  # a mirrored digit is another glyph; a mirrored shoe is a shoe
            steps.append(RandomHorizontalFlip())
    steps.append(Normalize(norm["mean"], norm["std"]))
    return Compose(steps)


# -- the run folder ------------------------------------------------------------------------------------------


class _MetricsWriter(Callback):
    """metrics.csv and metrics.json after every epoch, so an unfinished run can be watched and plotted."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_epoch_end(self, run, record: dict) -> None:
        runs.save_text(self.folder / "metrics.csv", run.history.to_csv())
        runs.write_json(self.folder / "metrics.json", {"epochs": run.history.records})


def _check_folder(out: Path, args) -> None:
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder")
    if not args.force and out.exists() and any(out.iterdir()):
        what = "holds a run" if runs.is_run(out) else "is not empty"
        raise CLIError(f"{out} already exists and {what}; pass --resume to continue it or --force to start over")


def _check_resume_flags(args, config: dict, recipe: dict) -> None:
    for flag, keys in KEPT_ON_RESUME.items():
        given = getattr(args, flag)
        value = config
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if given is not None and given != value:
            raise CLIError(f"--{flag} {given} differs from the run's {value!r}: a resumed run keeps its settings "
                           "(start a new run with another --out, or --force)")
    if args.autotune and not config.get("autotune"):
        raise CLIError("--autotune: the run was trained without it, and a resumed run keeps its convolution "
                       "algorithms (start a new run with another --out, or --force)")
    if args.model_options is not None and dict(args.model_options) != config["model"].get("options", {}):
        raise CLIError("--model-option differs from the run's model options: a resumed run keeps its model")
    explicit = resolve_recipe(recipe, args)
    for key in ("optimizer", "optimizer_kwargs", "lr", "scheduler", "max_lr", "batch_size", "weight_decay", "augment"):
        if explicit[key] != recipe[key]:
            raise CLIError(f"{key} {explicit[key]!r} differs from the run's {recipe[key]!r}: a resumed run keeps its "
                           "recipe (only --epochs may change)")


def _new_config(args, classes: list[str], image_shape, n_train: int, n_val: int) -> dict:
    name = args.model or "convnet"
    recipe = resolve_recipe(models.recipe(name), args)
    return {
        "format": runs.FORMAT,
        "numcnn_version": __version__,
        "model": {"name": name, "in_channels": int(image_shape[0]), "num_classes": len(classes),
                  "options": dict(args.model_options or [])},
        "dataset": {"name": args.dataset or "fashion-mnist",
                    "root": str(Path(args.data_dir).resolve()) if args.data_dir else None,
                    "classes": list(classes), "image_shape": [int(v) for v in image_shape],
                    "train_images": n_train, "val_images": n_val, "limit": args.limit},
        "normalization": None,  # filled in once the training split is known
        "seed": 0 if args.seed is None else args.seed,
        "recipe": recipe,
        "autotune": bool(args.autotune),
        "command": shlex.join(["numcnn", *getattr(args, "argv", ["train"])]),
    }


# -- the command ---------------------------------------------------------------------------------------------


def _init_distributed(args):
    """The communicator of the MPI job (--distributed), else None."""
    from .. import distributed

    if not getattr(args, "distributed", False):
        if getattr(args, "sync_bn", False):
            raise CLIError("--sync-bn applies to --distributed training only")
        n = distributed.launcher_world_size()
        if n > 1:
            raise CLIError(f"started by an MPI launcher as {n} processes but without --distributed: each would train "
                           "alone and overwrite the others' run folder (add --distributed)")
        return None

    try:
        return distributed.init()
    except distributed.DistributedError as e:
        raise CLIError(str(e)) from None


def _shard(loader: DataLoader, world) -> DataLoader:
    """An evaluation loader reading this rank's share of the images, each image on exactly one rank."""
    from ..distributed import DistributedSampler

    sampler = DistributedSampler(loader.dataset, world.size, world.rank, shuffle=False, pad=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, transform=loader.transform, sampler=sampler)


def run(args) -> int:
    world = _init_distributed(args)
    rank0 = world is None or world.rank == 0
    quiet = args.quiet or not rank0
    say = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    model_name, dataset_name = args.model or "convnet", args.dataset or "fashion-mnist"
    if model_name not in models.names():
        raise CLIError(f"unknown model {model_name!r}; known models: {', '.join(models.names())}")
    if dataset_name not in runs.DATASETS:
        raise CLIError(f"unknown dataset {dataset_name!r}; known datasets: {', '.join(runs.DATASETS)}")
    out = Path(args.out or f"runs/{model_name}-{dataset_name}")
    checkpoint = out / runs.CHECKPOINT
    resuming = args.resume and (checkpoint / "state.json").is_file()

    config = None
    if args.resume:
        config = runs.read_config(out)
        _check_resume_flags(args, config, config["recipe"])
    else:
        _check_folder(out, args)

    # Data: the training file split by the seed, the test file kept for the very end.
    ds_name = config["dataset"]["name"] if config else dataset_name
    root = args.data_dir if args.data_dir is not None else (config["dataset"].get("root") if config else None)
    train_file = runs.load_dataset(ds_name, root, train=True, download=args.download)
    test_file = runs.load_dataset(ds_name, root, train=False, download=args.download)
    seed = config["seed"] if config else (0 if args.seed is None else args.seed)
    limit = config["dataset"].get("limit") if config else args.limit
    train_set, val_set = runs.split(train_file, seed, limit)
    if config is None:
        image_shape = (1, *train_file.data.shape[1:]) if train_file.data.ndim == 3 else train_file.data.shape[1:]
        config = _new_config(args, train_file.classes, image_shape, len(train_set), len(val_set))
        mean, std = channel_stats(train_set)
        config["normalization"] = {"mean": list(mean), "std": list(std)}
    r = config["recipe"]
    epochs = args.epochs if args.epochs is not None else r["epochs"]
    if epochs > r["epochs"]:
        if resuming and r["scheduler"] in FIXED_LENGTH:
            raise CLIError(f"the run's {r['scheduler']} schedule was planned for {r['epochs']} epochs; --resume can "
                           f"finish it but not stretch it to {epochs} (start a new run with --epochs {epochs})")
        r["epochs"] = epochs  # the config says how long the run became

    batch, sampler = r["batch_size"], None
    if world is not None:
        from ..distributed import DistributedSampler

        if batch % world.size:
            raise CLIError(f"--distributed: the global batch {batch} does not split evenly over {world.size} ranks "
                           f"(pass a --batch-size that is a multiple of {world.size})")
        batch //= world.size
        sampler = DistributedSampler(train_set, world.size, world.rank, shuffle=True, seed=seed)
        config["distributed"] = {"world_size": world.size, "per_rank_batch": batch, "sync_bn": args.sync_bn}
    else:
        config.pop("distributed", None)

    manual_seed(seed)
    model = runs.build_model(config)
    loss_fn = get_loss(r["loss"])
    train_loader = DataLoader(train_set, batch_size=batch, shuffle=sampler is None, sampler=sampler,
                              generator=np.random.default_rng([seed, 1] if world is None else [seed, 1, world.rank]),
                              transform=train_transform(config, r["augment"]))
    val_loader = runs.eval_loader(val_set, config)
    optimizer = build_optimizer(model, r)
    if world is not None:
        from ..distributed import DistributedOptimizer, SyncBatchNorm

        if args.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model)
        val_loader = _shard(val_loader, world)
        optimizer = DistributedOptimizer(optimizer, model=model, comm=world)  # rank 0's weights everywhere
    scheduler = build_scheduler(optimizer, r, len(train_loader))

    history = None
    if resuming:
        try:
            history = resume(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
                             train_loader=train_loader)
        except (FileNotFoundError, ValueError) as e:
            raise CLIError(f"cannot resume from {checkpoint}: {e}") from None
        if len(history) > epochs:
            raise CLIError(f"the run has already trained {len(history)} epochs, more than --epochs {epochs}")
    elif args.resume:
        say(f"{checkpoint}: no checkpoint yet, starting the run from its first epoch")
    if config.get("autotune"):  # after resume, whose checkpoint holds the choices made so far
        conv_select.set_autotune(True)
    if world is not None:
        world.barrier("Barrier before rank 0 writes the run folder")  # every rank has read and checked it
    if rank0:
        if args.force:
            runs.clear_run(out)
        if not figures.available():
            print("numcnn train: warning: matplotlib is not installed, curves.png will not be drawn "
                  "(pip install 'numcnn[cli]')", file=sys.stderr)
        runs.write_json(out / runs.CONFIG, config)

    n_params = sum(p.numel() for p in model.parameters())
    say(f"model: {config['model']['name']} ({n_params:,} parameters), run folder: {out}")
    mean_s = ", ".join(f"{v:.4f}" for v in config["normalization"]["mean"])
    std_s = ", ".join(f"{v:.4f}" for v in config["normalization"]["std"])
    say(f"data: {ds_name}, {len(train_set):,} training / {len(val_set):,} validation / {len(test_file):,} test "
        f"images, normalised with mean {mean_s} std {std_s}")
    sched = f"onecycle to {r['max_lr']:g}" if r["scheduler"] == "onecycle" else (r["scheduler"] or "constant lr")
    say(f"recipe: {r['optimizer']} lr {r['lr']:g}, {sched}, batch {r['batch_size']}, weight decay "
        f"{r['weight_decay']:g}, {'augment' if r['augment'] else 'no augment'}, loss {r['loss']}, seed {seed}")
    if history is not None:
        say(f"resuming after epoch {len(history)}, up to epoch {epochs}")
    if config.get("autotune"):
        say("autotune: each new convolution shape times its algorithms once; the choices go into the checkpoints")
    if world is not None:
        say(f"distributed: {world.size} rank{'s' if world.size > 1 else ''} x batch {batch} = global batch "
            f"{r['batch_size']}" + (", SyncBatchNorm" if args.sync_bn else "")
            + ("" if world.size > 1 else " (not started by mpirun: one process)"))

    writers = [Checkpoint(checkpoint, extra={"config": config}), _MetricsWriter(out)]
    if world is None:
        callbacks = writers
    else:
        from ..distributed import DistributedTraining

        callbacks = [DistributedTraining(world, rank_zero=writers, seed=seed)]
    try:
        history = fit(model, train_loader, val_loader, epochs=epochs, optimizer=optimizer, loss_fn=loss_fn,
                      scheduler=scheduler, callbacks=callbacks, history=history, verbose=not quiet, log=say,
                      detect_anomaly=args.detect_anomaly)
    except (TrainingDiverged, AnomalyError) as e:
        where = "" if world is None else f"rank {world.rank} of {world.size}: "
        print(f"numcnn train: {where}{e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if rank0:
            print(f"numcnn train: interrupted; the last finished epoch is saved in {checkpoint}. Continue with: "
                  f"numcnn train --out {shlex.quote(str(out))} --resume --epochs {epochs}", file=sys.stderr)
        return 130

    if rank0:
        save(model.state_dict(), out / runs.WEIGHTS,
             metadata={"format": runs.FORMAT, "model": config["model"]["name"]})
    classes = config["dataset"]["classes"]
    test_loader = runs.eval_loader(test_file, config)
    if world is None:
        test = evaluate(model, test_loader, loss_fn, num_classes=len(classes))
    else:
        from ..distributed import reduce_eval_result

        test = reduce_eval_result(evaluate(model, _shard(test_loader, world), loss_fn, num_classes=len(classes)),
                                  world)
        if not rank0:
            return 0
    times = [t for t in history["epoch_time"] if t is not None]
    metrics = {"epochs": history.records,
               "test": {"loss": test.loss, "accuracy": test.accuracy, "images": test.n,
                        "per_class_accuracy": dict(zip(classes, test.per_class_accuracy.tolist()))},
               "seconds_per_epoch": sum(times) / len(times) if times else None}
    runs.save_text(out / "metrics.csv", history.to_csv())
    runs.write_json(out / "metrics.json", metrics)
    if figures.available():
        figures.curves(history.records, out / "curves.png", title=f"{config['model']['name']} on {ds_name}")
    say(f"wrote {out}: config.json, model.safetensors, checkpoint/, metrics.csv, metrics.json"
        + (", curves.png" if figures.available() else ""))
    if times:
        say(f"{sum(times) / len(times):.1f} s per epoch")
    say(f"test loss: {test.loss:.4f}")
    print(f"test accuracy: {test.accuracy:.4f}", flush=True)
    return 0
