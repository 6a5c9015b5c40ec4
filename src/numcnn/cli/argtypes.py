"""Argument types of the command line: a bad value becomes argparse's one-line error (exit status 2)."""

from __future__ import annotations

import argparse
import json


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


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (true, 0.5, [2,2,2]) and as a string otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. batchnorm=true), got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--model-option", dest="model_options", metavar="KEY=VALUE", type=key_value,
                   action="append", default=None,
                   help="a model option, repeatable (e.g. -o batchnorm=true for lenet5, -o bottleneck=true for resnet; "
                        "'numcnn summary --model NAME' lists a model's options)")
