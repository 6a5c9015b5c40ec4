"""A model's training recipe on the command line: the recipe with the explicit flags applied, and the optimizer,
scheduler and training transform it describes."""

from __future__ import annotations

from .. import optim
from ..data import Compose, Normalize, RandomCrop, RandomHorizontalFlip
from ..training.run_config import OPTIMIZERS, SCHEDULERS
from .errors import CLIError

# Schedules whose shape depends on the planned number of epochs: a finished run cannot be extended bit for bit.
FIXED_LENGTH = ("onecycle", "cosine")


def cannot_extend(scheduler: str, planned: int, asked: int) -> str:
    """The refusal of ``--resume --epochs N`` past the planned length of a fixed-length schedule, with the ways out."""
    return (f"the run's {scheduler} schedule was planned for {planned} epochs: runs with the {scheduler} schedule "
            "cannot be extended past their planned epochs (its learning rate curve is fitted to them); resume "
            f"without --epochs to finish this one, and to train {asked} epochs start a new run with --epochs {asked}, "
            "or train with --scheduler step or --scheduler none, whose runs --resume --epochs N can extend")


def too_few_epochs(trained: int, asked: int, scheduler: str | None, planned: int) -> str:
    """The refusal of ``--resume --epochs N`` below the epochs the run has already trained."""
    msg = (f"the run has already trained {trained} epochs, more than --epochs {asked} (--epochs is the run's total, "
           "not the epochs to add)")
    if scheduler not in FIXED_LENGTH:
        return msg + f"; --epochs {trained + asked} trains {asked} more"
    if planned > trained:
        return msg + f"; resume without --epochs to finish its planned {planned}"
    return msg + f"; its {scheduler} schedule has finished its planned {planned} epochs and cannot be extended"


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
