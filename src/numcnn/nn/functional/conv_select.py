"""Which kernel a conv2d with ``algorithm="auto"`` runs: a process-wide algorithm table, optional autotuning
(like ``torch.backends.cudnn.benchmark``), else the fixed rule ``kernels.conv.choose_algorithm``.

With autotune on, the first conv2d of each new shape times the candidates ("auto" -- the fixed per-pass rule --,
"im2col" and "rowshift" for stride 1; only "im2col" otherwise) on random data of that shape and keeps the
fastest in the table for the rest of the process. The
choice depends on timings, so two runs may compute with different algorithms (the same numbers to float
rounding, not the same bits): checkpoints save the table and resume loads it back, so a resumed run computes
exactly as the run it continues. A table loaded with :func:`load_algorithm_table` is used even with autotune off.

Keys are readable strings of everything that identifies a call, e.g.
``"x=100x16x14x14 w=32x16x5x5 s=1x1 p=2,2,2,2 d=1x1 g=1 float32 train"`` (p: top, bottom, left, right;
"train" when a gradient will be asked for, timed forward + grad-input + grad-weight; "infer" for forward only).
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
from numpy.typing import DTypeLike

from ...kernels import conv as K

__all__ = [
    "CANDIDATES", "algorithm_table", "autotune_report", "clear_algorithm_table", "is_autotune_enabled",
    "load_algorithm_table", "select", "set_autotune",
]

# "auto" is the fixed per-pass rule (im2col and rowshift mixed pass by pass): listed first, it wins ties, and
# autotune never picks something slower than what it replaces. "naive" is a reference, never a candidate.
CANDIDATES = ("auto", "im2col", "rowshift")
_REPEATS = 3  # best of 3 after one warm-up

_lock = threading.Lock()
_autotune = False
_table: dict[str, str] = {}
_times: dict[str, dict[str, float]] = {}

# The stride of a key, when the key is one of ours: rowshift is refused for any other stride than 1x1.
_KEY = re.compile(r"x=\d+(?:x\d+)* w=\d+(?:x\d+)* s=(\d+)x(\d+) p=\d+(?:,\d+)* d=\d+x\d+ g=\d+ \w+ (?:train|infer)")


def set_autotune(enabled: bool) -> None:
    """Turn autotuning of ``algorithm="auto"`` convolutions on or off for the whole process (default off)."""
    global _autotune
    _autotune = bool(enabled)


def is_autotune_enabled() -> bool:
    return _autotune


def _key(x_shape, w_shape, stride, padding, dilation, groups, dtype, backward: bool) -> str:
    (top, bottom), (left, right) = padding
    return (f"x={'x'.join(map(str, x_shape))} w={'x'.join(map(str, w_shape))} s={stride[0]}x{stride[1]} "
            f"p={top},{bottom},{left},{right} d={dilation[0]}x{dilation[1]} g={groups} {np.dtype(dtype).name} "
            f"{'train' if backward else 'infer'}")


def _candidates(stride) -> tuple[str, ...]:
    return CANDIDATES if tuple(stride) == (1, 1) else ("im2col",)


def _time_candidate(algorithm: str, x, w, b, dy, stride, padding, dilation, groups, backward: bool) -> float:
    """Milliseconds of one forward (+ grad-input + grad-weight when ``backward``), best of ``_REPEATS`` after a
    warm-up (the warm-up fills the workspace pool and OpenBLAS's buffers)."""
    best = float("inf")
    for i in range(_REPEATS + 1):
        t0 = time.perf_counter()
        if backward:
            _, cols = K.conv2d_forward(x, w, b, stride, padding, dilation, groups, algorithm=algorithm,
                                       return_cols=True)
            K.conv2d_backward_input(dy, w, x.shape, stride, padding, dilation, groups, algorithm=algorithm)
            K.conv2d_backward_weight(dy, x, w.shape, stride, padding, dilation, groups, algorithm=algorithm,
                                     cols=cols)
            if cols is not None:
                cols.release()
        else:
            K.conv2d_forward(x, w, b, stride, padding, dilation, groups, algorithm=algorithm)
        if i:
            best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def _measure(x_shape, w_shape, stride, padding, dilation, groups, dtype, backward: bool) -> dict[str, float]:
    """{candidate: ms} on random data of the call's shapes and dtype (fixed seed: the same data every time)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape, dtype=np.float32).astype(dtype, copy=False)
    w = rng.standard_normal(w_shape, dtype=np.float32).astype(dtype, copy=False)
    b = rng.standard_normal(w_shape[0], dtype=np.float32).astype(dtype, copy=False)
    dy = None
    if backward:
        ho, wo = (K.conv_output_size(x_shape[2 + i], w_shape[2 + i], stride[i], sum(padding[i]), dilation[i])
                  for i in range(2))
        dy = rng.standard_normal((x_shape[0], w_shape[0], ho, wo), dtype=np.float32).astype(dtype, copy=False)
    return {alg: _time_candidate(alg, x, w, b, dy, stride, padding, dilation, groups, backward)
            for alg in _candidates(stride)}


def select(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: tuple[int, int],
           padding: tuple[tuple[int, int], tuple[int, int]], dilation: tuple[int, int], groups: int,
           dtype: DTypeLike, backward: bool) -> str:
    """The algorithm a conv2d of x (N, C, H, W) with w (K, C/groups, R, S) runs when asked for "auto": the
    table's entry for the call if there is one ("im2col" or "rowshift" for all three passes, or "auto"), else
    (autotune on) the fastest candidate, measured now and kept in the table, else "auto" itself: the kernels
    then pick per pass by ``kernels.conv.choose_algorithm``'s fixed rule. padding is ((top, bottom), (left, right));
    ``backward``: whether a gradient of x or w will be asked for (then the timing includes both backward passes).
    """
    if not _autotune and not _table:  # the default: no key to build, no lock to take
        return "auto"
    key = _key(x_shape, w_shape, stride, padding, dilation, groups, dtype, backward)
    chosen = _table.get(key)
    if chosen is not None:
        return chosen
    if not _autotune:
        return "auto"
    # Measured outside the lock (other threads' convolutions go on); if two threads time the same key at once,
    # the first to finish decides for both, so a key never maps to two algorithms.
    times = _measure(x_shape, w_shape, stride, padding, dilation, groups, dtype, backward)
    fastest = min(times, key=times.get)
    with _lock:
        chosen = _table.setdefault(key, fastest)
        _times.setdefault(key, times)
    return chosen


def algorithm_table() -> dict[str, str]:
    """A copy of the table: key -> "im2col" | "rowshift" (what checkpoints save)."""
    with _lock:
        return dict(_table)


def autotune_report() -> dict[str, dict[str, float]]:
    """The timings behind the table's measured entries: key -> {candidate: milliseconds}. Entries loaded with
    :func:`load_algorithm_table` have none."""
    with _lock:
        return {k: dict(v) for k, v in _times.items()}


def _check_entry(key, value) -> None:
    if not isinstance(key, str):
        raise ValueError(f"algorithm table: keys must be strings, got {key!r} ({type(key).__name__})")
    if value not in CANDIDATES:
        raise ValueError(f"algorithm table: entry {key!r}: expected one of {CANDIDATES}, got {value!r}")
    m = _KEY.fullmatch(key)
    if value == "rowshift" and m is not None and (m[1], m[2]) != ("1", "1"):
        raise ValueError(f"algorithm table: entry {key!r}: 'rowshift' needs stride 1x1, the key has stride "
                         f"{m[1]}x{m[2]}")


def load_algorithm_table(table: dict) -> None:
    """Replace the table by ``table`` (key -> "im2col" | "rowshift", e.g. a checkpoint's), checked whole first:
    a ValueError names the first bad entry and leaves the table as it was. The timings of measured entries are
    dropped (the loaded choices were not measured here). An empty dict clears the table."""
    if not isinstance(table, dict):
        raise ValueError(f"algorithm table: expected a dict of key -> algorithm, got {type(table).__name__}")
    for key, value in table.items():
        _check_entry(key, value)
    with _lock:
        _table.clear()
        _table.update(table)
        _times.clear()


def clear_algorithm_table() -> None:
    """Forget every choice and timing: "auto" follows the fixed rule again (or measures anew with autotune on)."""
    with _lock:
        _table.clear()
        _times.clear()
