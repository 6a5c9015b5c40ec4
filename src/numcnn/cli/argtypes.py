"""Argument types of the command line: a bad value becomes argparse's one-line error (exit status 2)."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import types
import typing

from .. import models
from .errors import CLIError


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return v


def _float(text: str, ok, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not (v == v and abs(v) != float("inf")) or not ok(v):  # NaN and Inf are never useful here
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_float(text: str) -> float:
    return _float(text, lambda v: v > 0, "a positive number")


def nonneg_float(text: str) -> float:
    return _float(text, lambda v: v >= 0, "a non-negative number")


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE``, the value kept as text: :func:`typed_model_options` reads it with the option's type."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. batchnorm=true), got {text!r}")
    return key, value


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--model-option", dest="model_options", metavar="KEY=VALUE", type=key_value,
                   action="append", default=None,
                   help="a model option, repeatable, read with the type of the model's argument: booleans as "
                        "true/false, yes/no, on/off or 1/0 (e.g. -o batchnorm=true for lenet5, -o bottleneck=yes "
                        "for resnet); 'numcnn summary --model NAME' lists a model's options")


# -- model options, typed by the builder's signature ---------------------------------------------------------------

BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
KINDS = {bool: "a boolean (true/false, yes/no, on/off, 1/0)", int: "an integer", float: "a number",
         list: "a list of integers (e.g. 1,2,2 or [1,2,2])", str: "a string"}  # the order they are tried in
# Ranges the option's meaning fixes, whatever the model: option name -> (test of one value, what is expected).
RANGES = {"dropout": (lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]"),
          "channels": (lambda v: v >= 1, "a positive integer"), "hidden": (lambda v: v >= 1, "a positive integer"),
          "blocks_per_stage": (lambda v: v >= 1, "positive integers")}


def _kinds(param: inspect.Parameter) -> list[type]:
    """The types an option takes, in the order to try them: from its annotation, else its default's type."""
    ann = param.annotation
    if ann is inspect.Parameter.empty or isinstance(ann, str):
        return [type(param.default)] if type(param.default) in KINDS else []
    members = typing.get_args(ann) if typing.get_origin(ann) in (typing.Union, types.UnionType) else (ann,)
    kinds = [{tuple: list}.get(typing.get_origin(m) or m, typing.get_origin(m) or m) for m in members]
    return sorted((k for k in kinds if k in KINDS), key=list(KINDS).index)


def _read(kind: type, text: str):
    """``text`` as a ``kind``; ValueError when it is not one."""
    if kind is bool:
        return BOOLEANS[text.strip().lower()] if text.strip().lower() in BOOLEANS else _fail()
    if kind is int:
        return int(text)
    if kind is float:
        v = float(text)
        return v if math.isfinite(v) else _fail()
    if kind is list:
        items = text.strip().removeprefix("[").removesuffix("]").removeprefix("(").removesuffix(")").split(",")
        return [int(item) for item in items]
    return text


def _fail():
    raise ValueError


def _json_or_text(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def typed_model_options(model: str | None, pairs: list[tuple[str, str]]) -> dict:
    """``-o KEY=VALUE`` pairs as model ``model``'s keyword arguments, each value read with the type of the
    builder's argument. CLIError for an option the model does not take (listing those it takes) and for a value
    that is not of the option's type or out of its range. Without a known model the values are read as JSON."""
    if model not in models.names():  # no model yet (a resumed run), or an unknown one the command refuses
        return {k: _json_or_text(v) for k, v in pairs}
    params, out = models.registry.option_parameters(model), {}
    for key, text in pairs:
        if key not in params:
            known = ", ".join(f"{k} ({'/'.join(t.__name__ for t in _kinds(p)) or 'any'}, default {p.default!r})"
                              for k, p in params.items())
            raise CLIError(f"-o {key}={text}: {model} has no option {key!r}; "
                           + (f"its options are: {known}" if known else "it takes no options"))
        kinds = _kinds(params[key])
        out[key] = _typed(model, key, text, kinds) if kinds else _json_or_text(text)
    return out


def _typed(model: str, key: str, text: str, kinds: list[type]):
    for kind in kinds:
        try:
            value = _read(kind, text)
        except ValueError:
            continue
        test, what = RANGES.get(key, (None, None))
        if test and kind in (int, float, list) and not all(test(v) for v in (value if kind is list else [value])):
            raise CLIError(f"-o {key}={text}: {model}'s option {key} takes {what}, got {text!r}")
        return value
    expected = " or ".join(KINDS[k] for k in kinds)
    raise CLIError(f"-o {key}={text}: {model}'s option {key} takes {expected}, got {text!r}")
