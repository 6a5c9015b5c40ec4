"""Numerics the commands report themselves: weights holding NaN/Inf, a diverged run's summary, and NumPy's raw
``RuntimeWarning`` (overflow, invalid value in matmul, ...) kept from the user, whom the warnings here inform."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..training.checkpoint import checkpoint_epoch


@contextmanager
def quiet_numpy() -> Iterator[None]:
    """NumPy's floating-point warnings neither printed nor raised: the commands warn in their own words."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning,
                                message=r".*(overflow|invalid value|divide by zero|underflow) encountered")
        yield


def nonfinite_weights(model) -> list[str]:
    """The names of ``model``'s state_dict arrays (weights and buffers) holding NaN or Inf."""
    try:
        state = model.state_dict()
    except (AttributeError, TypeError):
        return []
    bad = []
    for name, value in state.items():
        arr = np.asarray(getattr(value, "data", value))
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
            bad.append(name)
    return bad


def warn_weights(command: str, loaded) -> None:
    """One line on stderr when the loaded model's weights hold NaN/Inf (a diverged run): its outputs are garbage."""
    bad = nonfinite_weights(loaded.model)
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        print(f"numcnn {command}: warning: the weights of {loaded.source} hold NaN/Inf ({', '.join(bad[:3])}{more}): "
              "the run diverged, its outputs are meaningless", file=sys.stderr, flush=True)


def kept_checkpoint(checkpoint) -> str:
    """Which checkpoint a diverged run left, for its messages."""
    epoch = checkpoint_epoch(checkpoint)
    if epoch is None:
        return "no checkpoint was written (no epoch ended with a finite validation loss)"
    return f"{checkpoint} holds epoch {epoch}, the last whose validation loss was finite"
