"""The model registry: every zoo model under a short name, with the options it takes and its training recipe.

A recipe is a plain dict the CLI turns into an optimizer, a scheduler and a loop:

=================  ==========================================================================================
``optimizer``      ``"adam"`` or ``"sgd"`` (the class in ``numcnn.optim``, lower-cased)
``optimizer_kwargs`` extra constructor arguments, e.g. ``{"momentum": 0.9, "nesterov": True}``
``lr``             the optimizer's learning rate; with ``scheduler="onecycle"`` the scheduler overrides it every
                   step, starting at ``max_lr / 25`` and peaking at ``max_lr``
``scheduler``      ``"onecycle"`` (``optim.lr_scheduler.OneCycleLR``, stepped once per batch) or ``None``
``max_lr``         OneCycle's peak learning rate, ``None`` without a scheduler
``batch_size``     mini-batch size
``epochs``         passes over the training set
``augment``        whether to use random-crop style data augmentation
``weight_decay``   the optimizer's ``weight_decay`` argument (L2 penalty)
``loss``           ``"cross_entropy"`` on the logits, or ``"mse"`` between the outputs and one-hot targets
=================  ==========================================================================================
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from ..nn import Module

RECIPE_KEYS = ("optimizer", "optimizer_kwargs", "lr", "scheduler", "max_lr", "batch_size", "epochs", "augment",
               "weight_decay", "loss")


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: ``builder(in_channels, num_classes, **options)`` returns the module."""

    name: str
    builder: Callable[..., Module]
    recipe: dict
    summary: str
    options: dict = field(default_factory=dict)  # option name -> default value


_REGISTRY: dict[str, ModelEntry] = {}


def make_recipe(optimizer: str, lr: float, *, optimizer_kwargs: dict | None = None, scheduler: str | None = None,
                max_lr: float | None = None, batch_size: int = 100, epochs: int = 3, augment: bool = False,
                weight_decay: float = 0.0, loss: str = "cross_entropy") -> dict:
    """A recipe dict with every key of ``RECIPE_KEYS``, checked for consistency."""
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"recipe: optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if scheduler not in (None, "onecycle"):
        raise ValueError(f"recipe: scheduler must be 'onecycle' or None, got {scheduler!r}")
    if (scheduler == "onecycle") != (max_lr is not None):
        raise ValueError("recipe: max_lr is given exactly when scheduler is 'onecycle'")
    if loss not in ("cross_entropy", "mse"):
        raise ValueError(f"recipe: loss must be 'cross_entropy' or 'mse', got {loss!r}")
    return {"optimizer": optimizer, "optimizer_kwargs": dict(optimizer_kwargs or {}), "lr": lr,
            "scheduler": scheduler, "max_lr": max_lr, "batch_size": batch_size, "epochs": epochs,
            "augment": augment, "weight_decay": weight_decay, "loss": loss}


def register(name: str, recipe: dict, summary: str) -> Callable:
    """Class decorator: register ``cls(in_channels, num_classes, **options)`` under ``name``. The options are
    the keyword arguments of ``cls.__init__`` after ``in_channels`` and ``num_classes``."""

    def deco(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        params = list(inspect.signature(builder).parameters.values())
        if [p.name for p in params[:2]] != ["in_channels", "num_classes"]:
            raise TypeError(f"{builder.__name__}: the first arguments must be (in_channels, num_classes)")
        options = {p.name: p.default for p in params[2:]}
        _REGISTRY[name] = ModelEntry(name, builder, recipe, summary, options)
        return builder

    return deco


def _entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, in_channels: int = 1, num_classes: int = 10, **options) -> Module:
    """Build model ``name`` for inputs (N, in_channels, 28, 28) float32; it returns (N, num_classes) float32.

    Raises ValueError for an unknown name (listing the known ones) and TypeError for an option the model
    does not take (listing the ones it does)."""
    entry = _entry(name)
    unknown = [k for k in options if k not in entry.options]
    if unknown:
        accepted = ", ".join(f"{k}={v!r}" for k, v in entry.options.items()) or "none"
        raise TypeError(f"model {name!r} got unknown option(s) {', '.join(map(repr, unknown))}; "
                        f"its options are: {accepted}")
    return entry.builder(in_channels, num_classes, **options)


def recipe(name: str) -> dict:
    """A copy of model ``name``'s default training recipe (see the module docstring for the keys)."""
    return copy.deepcopy(_entry(name).recipe)


def options(name: str) -> dict:
    """Model ``name``'s options and their defaults (besides ``in_channels`` and ``num_classes``)."""
    return dict(_entry(name).options)


def option_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Model ``name``'s options as the builder's signature gives them (annotations evaluated when they can be):
    what the command line reads ``-o KEY=VALUE`` with."""
    builder = _entry(name).builder
    try:
        params = inspect.signature(builder, eval_str=True).parameters
    except (NameError, TypeError, SyntaxError):  # an annotation that does not evaluate: keep it as a string
        params = inspect.signature(builder).parameters
    return {k: p for k, p in params.items() if k in _entry(name).options}


def describe(name: str) -> str:
    """A one-line description of model ``name``."""
    return _entry(name).summary
