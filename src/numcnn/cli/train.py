"""``numcnn train``: build the model, data, optimizer and scheduler of a recipe, fit, save the run folder, test once."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, manual_seed, models
from ..autograd.anomaly import AnomalyError
from ..data import DataLoader
from ..data.stats import channel_stats
from ..kernels import jit
from ..kernels.runtime import runtime
from ..serialization import save
from ..training import Checkpoint, TrainingDiverged, evaluate, fit, resume
from ..training.callbacks import DivergenceWatch
from ..training.checkpoint import has_checkpoint, recover_checkpoint
from ..training.losses import get_loss
from ..training.run_config import build_model
from . import figures, numerics, run_folder, runs, stop, train_args, train_world
from .errors import CLIError
from .recipe import (
    FIXED_LENGTH,
    build_optimizer,
    build_scheduler,
    cannot_extend,
    resolve_recipe,
    too_few_epochs,
    train_transform,
)
from .train_world import init_distributed as _init_distributed

# Flags a resumed run must not change (the run folder's config.json decides them): flag -> where in the config.
KEPT_ON_RESUME = {"model": ("model", "name"), "dataset": ("dataset", "name"), "seed": ("seed",),
                  "limit": ("dataset", "limit")}


def add_parser(sub) -> None:
    train_args.add_parser(sub).set_defaults(run=run)


# -- the run folder ------------------------------------------------------------------------------------------


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


# -- the steps of a run --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What the flags (and, with --resume, the run folder's config.json) decide before any data is read."""

    args: Any
    world: Any  # the MPI communicator with --distributed, else None
    rank0: bool
    quiet: bool
    say: Callable[..., None]
    out: Path
    checkpoint: Path
    resuming: bool  # --resume and the run folder holds a checkpoint
    config: dict | None  # the resumed run's; a new run's is made once the training split is known
    dataset: str
    root: str | None
    seed: int
    limit: int | None


@dataclass
class _Data:
    """The dataset's splits, and how far and in what batches this rank trains on them."""

    train_set: Any
    val_set: Any
    test_file: Any
    epochs: int
    batch: int  # this rank's share of the recipe's batch
    sampler: Any  # the DistributedSampler of --distributed, else None


@dataclass
class _Training:
    model: Any
    loss_fn: Any
    train_loader: DataLoader
    val_loader: DataLoader
    optimizer: Any
    scheduler: Any
    history: Any = None  # the resumed run's, then fit's
    watch: Any = None  # the DivergenceWatch of _fit


def _plan(args, held: ExitStack) -> _Plan:
    """Also takes the run folder's lock (rank 0; into ``held``, released when the run ends) before reading it."""
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
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file, not a folder")
    if args.resume and not out.is_dir():
        runs.read_config(out)  # its message, and no folder made for the lock
    if rank0:
        held.enter_context(run_folder.lock(out))
    checkpoint = out / runs.CHECKPOINT
    if args.resume and rank0:  # a checkpoint swap a crash left half done: the old checkpoint back in its place
        for line in recover_checkpoint(checkpoint):
            say(line)
    resuming = args.resume and has_checkpoint(checkpoint)
    config = None
    if args.resume:
        config = runs.read_config(out)
        _check_resume_flags(args, config, config["recipe"])
    else:
        run_folder.check_new(out, args.force)
    return _Plan(
        args=args, world=world, rank0=rank0, quiet=quiet, say=say, out=out, checkpoint=checkpoint, resuming=resuming,
        config=config,
        dataset=config["dataset"]["name"] if config else dataset_name,
        root=stop.data_root(args.data_dir, config, args.download),  # a named folder that is missing: an error
        seed=config["seed"] if config else (0 if args.seed is None else args.seed),
        limit=config["dataset"].get("limit") if config else args.limit)


def _prepare_data(plan: _Plan) -> _Data:
    """Data: the training file split by the seed, the test file kept for the very end. Completes the config: a new
    run's is made here (normalised by the training split); the length of the run and the ranks' batches go into it."""
    args, world, seed = plan.args, plan.world, plan.seed
    train_file = runs.load_dataset(plan.dataset, plan.root, train=True, download=args.download)
    test_file = runs.load_dataset(plan.dataset, plan.root, train=False, download=args.download)
    stop.check_found_in(plan.root, train_file, test_file)  # not another copy than the one named
    train_set, val_set = runs.split(train_file, seed, plan.limit)
    if plan.config is None:
        image_shape = (1, *train_file.data.shape[1:]) if train_file.data.ndim == 3 else train_file.data.shape[1:]
        plan.config = _new_config(args, train_file.classes, image_shape, len(train_set), len(val_set))
        try:
            mean, std = channel_stats(train_set)
        except ValueError as e:  # constant or non-finite images: nothing to normalise by
            raise CLIError(str(e)) from None
        plan.config["normalization"] = {"mean": list(mean), "std": list(std)}
    config = plan.config
    r = config["recipe"]
    epochs = args.epochs if args.epochs is not None else r["epochs"]
    if epochs > r["epochs"]:
        if plan.resuming and r["scheduler"] in FIXED_LENGTH:
            raise CLIError(cannot_extend(r["scheduler"], r["epochs"], epochs))
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
    return _Data(train_set=train_set, val_set=val_set, test_file=test_file, epochs=epochs, batch=batch,
                 sampler=sampler)


def _build_training(plan: _Plan, data: _Data) -> _Training:
    """The model (initialised by the seed), the loss, the loaders, the optimizer and the scheduler."""
    config, world, seed, sampler = plan.config, plan.world, plan.seed, data.sampler
    r = config["recipe"]
    manual_seed(seed)
    model = build_model(config)
    loss_fn = get_loss(r["loss"])
    train_loader = DataLoader(data.train_set, batch_size=data.batch, shuffle=sampler is None, sampler=sampler,
                              generator=np.random.default_rng([seed, 1] if world is None else [seed, 1, world.rank]),
                              transform=train_transform(config, r["augment"]))
    val_loader = runs.eval_loader(data.val_set, config)
    optimizer = build_optimizer(model, r)
    if world is not None:
        from ..distributed import DistributedOptimizer, SyncBatchNorm

        if plan.args.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model)
        val_loader = train_world.shard(val_loader, world)
        optimizer = DistributedOptimizer(optimizer, model=model, comm=world)  # rank 0's weights everywhere
    scheduler = build_scheduler(optimizer, r, len(train_loader))
    return _Training(model=model, loss_fn=loss_fn, train_loader=train_loader, val_loader=val_loader,
                     optimizer=optimizer, scheduler=scheduler)


def _restore(plan: _Plan, data: _Data, training: _Training) -> None:
    """With --resume, the checkpoint's weights, optimizer, scheduler, loader and history; autotune's choices."""
    config, checkpoint = plan.config, plan.checkpoint
    if plan.resuming:
        try:
            training.history = resume(checkpoint, model=training.model, optimizer=training.optimizer,
                                      scheduler=training.scheduler, train_loader=training.train_loader)
        except (FileNotFoundError, ValueError) as e:
            msg = str(e)  # most name the file already
            named = msg.startswith(str(checkpoint))
            raise CLIError(msg if named else f"cannot resume from {checkpoint}: {msg}") from None
        if len(training.history) > data.epochs:
            r = plan.config["recipe"]
            raise CLIError(too_few_epochs(len(training.history), data.epochs, r["scheduler"], r["epochs"]))
    elif plan.args.resume:
        plan.say(f"{checkpoint}: no checkpoint yet, starting the run from its first epoch")
    if config.get("autotune"):  # after resume, whose checkpoint holds the choices made so far
        runtime.autotune = True


def _open_run_folder(plan: _Plan) -> None:
    """Rank 0 writes the marker and config.json (with --force, into a folder emptied of the previous run's files) once
    every rank has checked the folder."""
    if plan.world is not None:
        plan.world.barrier("Barrier before rank 0 writes the run folder")  # every rank has read and checked it
    if plan.rank0:
        run_folder.open_new(plan.out, plan.args.force)
        if not figures.available():
            print("numcnn train: warning: matplotlib is not installed, curves.png will not be drawn "
                  "(pip install 'numcnn[cli]')", file=sys.stderr)
        runs.write_json(plan.out / runs.CONFIG, plan.config)


def _announce(plan: _Plan, data: _Data, training: _Training) -> None:
    """The lines printed before the first epoch: model, data, recipe, and how the run is carried out."""
    config, world, say, r = plan.config, plan.world, plan.say, plan.config["recipe"]
    n_params = sum(p.numel() for p in training.model.parameters())
    say(f"model: {config['model']['name']} ({n_params:,} parameters), run folder: {plan.out}")
    mean_s = ", ".join(f"{v:.4f}" for v in config["normalization"]["mean"])
    std_s = ", ".join(f"{v:.4f}" for v in config["normalization"]["std"])
    say(f"data: {plan.dataset}, {len(data.train_set):,} training / {len(data.val_set):,} validation / "
        f"{len(data.test_file):,} test images, normalised with mean {mean_s} std {std_s}")
    sched = f"onecycle to {r['max_lr']:g}" if r["scheduler"] == "onecycle" else (r["scheduler"] or "constant lr")
    say(f"recipe: {r['optimizer']} lr {r['lr']:g}, {sched}, batch {r['batch_size']}, weight decay "
        f"{r['weight_decay']:g}, {'augment' if r['augment'] else 'no augment'}, loss {r['loss']}, seed {plan.seed}")
    if training.history is not None:
        say(f"resuming after epoch {len(training.history)}, up to epoch {data.epochs}")
    say(f"kernels: {runtime.backend}" + (" (compiled by Numba on first use)" if runtime.backend == "numba" else "")
        + f", {runtime.threads} thread{'s' if runtime.threads > 1 else ''}")
    if config.get("autotune"):
        say("autotune: each new convolution shape times its algorithms once; the choices go into the checkpoints")
    if world is not None:
        say(f"distributed: {world.size} rank{'s' if world.size > 1 else ''} x batch {data.batch} = global batch "
            f"{r['batch_size']}" + (", SyncBatchNorm" if plan.args.sync_bn else "")
            + ("" if world.size > 1 else " (not started by mpirun: one process)"))


def _fit(plan: _Plan, data: _Data, training: _Training) -> int | None:
    """Announces the run and trains up to the planned epochs, checkpointing each one; the exit code when training
    stops early."""
    world, checkpoint = plan.world, plan.checkpoint
    writers = [Checkpoint(checkpoint, extra={"config": plan.config}), runs.MetricsWriter(plan.out)]
    if world is None:
        callbacks = writers
    else:
        from ..distributed import DistributedTraining

        callbacks = [DistributedTraining(world, rank_zero=writers, seed=plan.seed)]
    warn = (lambda m: print(f"numcnn train: {m}", file=sys.stderr, flush=True)) if plan.rank0 else (lambda m: None)
    training.watch = DivergenceWatch(log=warn)  # a loss that explodes without becoming NaN
    callbacks = [*callbacks, training.watch]
    try:  # Ctrl-C or SIGTERM once the run folder is written (the lines before training included): the same message
        _announce(plan, data, training)
        training.history = fit(training.model, training.train_loader, training.val_loader, epochs=data.epochs,
                               optimizer=training.optimizer, loss_fn=training.loss_fn, scheduler=training.scheduler,
                               callbacks=callbacks, history=training.history, verbose=not plan.quiet, log=plan.say,
                               detect_anomaly=plan.args.detect_anomaly)
    except (TrainingDiverged, AnomalyError) as e:
        where = "" if world is None else f"rank {world.rank} of {world.size}: "
        print(f"numcnn train: {where}{e} ({numerics.kept_checkpoint(checkpoint)})", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (stop.Terminated): which epoch is saved, how to go on
        if plan.rank0:
            print(stop.training_stopped(e, plan.out, checkpoint, data.epochs), file=sys.stderr)
        return stop.exit_code(e)
    return None


def _finish(plan: _Plan, data: _Data, training: _Training) -> int:
    """Saves the weights, tests once (each rank its share of the test set), writes the metrics and curves and
    prints the summary, whose last line is the test accuracy."""
    config, world, out, say, history = plan.config, plan.world, plan.out, plan.say, training.history
    model, loss_fn = training.model, training.loss_fn
    if plan.rank0:
        save(model.state_dict(), out / runs.WEIGHTS,
             metadata={"format": runs.FORMAT, "model": config["model"]["name"]})
    classes = config["dataset"]["classes"]
    test_loader = runs.eval_loader(data.test_file, config)
    if world is None:
        test = evaluate(model, test_loader, loss_fn, num_classes=len(classes))
    else:
        from ..distributed import reduce_eval_result

        shared = train_world.shard(test_loader, world)
        test = reduce_eval_result(evaluate(model, shared, loss_fn, num_classes=len(classes)), world)
        if not plan.rank0:
            return 0
    times = [t for t in history["epoch_time"] if t is not None]
    metrics = {"epochs": history.records,
               "test": {"loss": test.loss, "accuracy": test.accuracy, "images": test.n,
                        "per_class_accuracy": dict(zip(classes, test.per_class_accuracy.tolist()))},
               "seconds_per_epoch": sum(times) / len(times) if times else None}
    runs.save_text(out / "metrics.csv", history.to_csv())
    runs.write_json(out / "metrics.json", metrics)
    if figures.available():
        figures.curves(history.records, out / "curves.png", title=f"{config['model']['name']} on {plan.dataset}")
    say(f"wrote {out}: config.json, model.safetensors, checkpoint/, metrics.csv, metrics.json"
        + (", curves.png" if figures.available() else ""))
    if times:
        say(f"{sum(times) / len(times):.1f} s per epoch")
    compiled = jit.compile_report()
    if compiled:
        say(f"compiled kernels: {len(compiled)} in {sum(compiled.values()):.1f} s (cached on disk: later runs load "
            "them in milliseconds)")
    say(f"test loss: {test.loss:.4f}")
    if training.watch is not None and training.watch.diverged:  # exit 1, as a NaN stop: the weights are no good
        print(f"numcnn train: warning: training diverged from epoch {training.watch.diverged_epoch} (a loss NaN/Inf or "
              f"over {training.watch.factor:g}x its start); {numerics.kept_checkpoint(plan.checkpoint)}",
              file=sys.stderr, flush=True)
    print(f"test accuracy: {test.accuracy:.4f}", flush=True)
    return 1 if training.watch is not None and training.watch.diverged else 0


def run(args) -> int:
    with stop.sigterm_as_interrupt():  # SIGTERM stops the run as Ctrl-C does (see numcnn/cli/stop.py)
        try:
            return _run(args)
        except stop.Terminated as e:  # outside training (inside: _fit)
            print(stop.stopped(e), file=sys.stderr)
            return stop.exit_code(e)


def _run(args) -> int:
    with ExitStack() as held:  # the run folder's lock, until the run ends
        plan = _plan(args, held)  # flags checked, run folder locked and checked, a resumed run's config read
        data = _prepare_data(plan)  # dataset split, config completed
        training = _build_training(plan, data)  # model, loss, loaders, optimizer, scheduler
        _restore(plan, data, training)  # --resume: the checkpoint's state
        _open_run_folder(plan)  # marker and config.json written
        stopped = _fit(plan, data, training)  # the lines before the first epoch, then training
        if stopped is not None:
            return stopped
        return _finish(plan, data, training)  # weights saved, tested once, metrics written
