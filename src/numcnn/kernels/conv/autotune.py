"""Which algorithm an ``algorithm="auto"`` convolution runs when the runtime's table says so, and the opt-in
autotuner that fills the table (like ``torch.backends.cudnn.benchmark``).

With ``runtime.autotune`` on, the first conv2d of each new shape times the candidates ("auto" -- the fixed per-pass
rule --, "im2col" and "rowshift" for stride 1; only "im2col" otherwise) on random data of that shape and keeps the
fastest in ``runtime.algorithms``. The choice depends on timings, so two runs may compute with different algorithms
(the same numbers to float rounding, not the same bits): checkpoints save the runtime's state and resume loads it
back, so a resumed run computes exactly as the run it continues. A loaded table is used even with autotune off.

Keys are readable strings of everything that identifies a call, e.g.
``"x=100x16x14x14 w=32x16x5x5 s=1x1 p=2,2,2,2 d=1x1 g=1 float32 train"`` (p: top, bottom, left, right;
"train" when a gradient will be asked for, timed forward + grad-input + grad-weight; "infer" for forward only).
"""

from __future__ import annotations

import re
import time

import numpy as np

from ..runtime import runtime
from . import dispatch
from .geometry import ConvGeometry

__all__ = ["CANDIDATES", "key", "select"]

# "auto" is the fixed per-pass rule: listed first, it wins ties, and autotune never picks something slower than what
# it replaces. "reference" and "gemm" are lessons, never candidates.
CANDIDATES = ("auto", "im2col", "rowshift")
_REPEATS = 3  # best of 3 after one warm-up

# The stride of a key, when the key is one of ours: rowshift is refused for any other stride than 1x1.
_KEY = re.compile(r"x=\d+(?:x\d+)* w=\d+(?:x\d+)* s=(\d+)x(\d+) p=\d+(?:,\d+)* d=\d+x\d+ g=\d+ \w+ (?:train|infer)")


def key(geo: ConvGeometry, dtype, backward: bool) -> str:
    (top, bottom), (left, right) = geo.padding
    return (f"x={'x'.join(map(str, geo.x_shape))} w={'x'.join(map(str, geo.w_shape))} "
            f"s={geo.stride[0]}x{geo.stride[1]} p={top},{bottom},{left},{right} d={geo.dh}x{geo.dw} g={geo.groups} "
            f"{np.dtype(dtype).name} {'train' if backward else 'infer'}")


def check_entry(key: str, value) -> None:
    """Refuse a table entry that is not a candidate, or rowshift for a strided layer (a ValueError naming it)."""
    if value not in CANDIDATES:
        raise ValueError(f"algorithm table: entry {key!r}: expected one of {CANDIDATES}, got {value!r}")
    m = _KEY.fullmatch(key)
    if value == "rowshift" and m is not None and (m[1], m[2]) != ("1", "1"):
        raise ValueError(f"algorithm table: entry {key!r}: 'rowshift' needs stride 1x1, the key has stride "
                         f"{m[1]}x{m[2]}")


runtime.add_table_check(check_entry)


def _time_candidate(geo: ConvGeometry, algorithm: str, x, w, b, dy) -> float:
    """Milliseconds of one forward (+ grad-input + grad-weight when dy is given), best of ``_REPEATS`` after a
    warm-up (the warm-up fills the workspace pool and OpenBLAS's buffers)."""
    best = float("inf")
    for i in range(_REPEATS + 1):
        t0 = time.perf_counter()
        if dy is not None:
            _, cols = dispatch.forward(geo, x, w, b, algorithm, return_cols=True)
            dispatch.backward_input(geo, dy, w, algorithm)
            dispatch.backward_weight(geo, dy, x, algorithm, cols)
            if cols is not None:
                cols.release()
        else:
            dispatch.forward(geo, x, w, b, algorithm)
        if i:
            best = min(best, (time.perf_counter() - t0) * 1e3)
    return best


def measure(geo: ConvGeometry, dtype, backward: bool) -> dict[str, float]:
    """{candidate: ms} on random data of the layer's shapes and dtype (fixed seed: the same data every time)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(geo.x_shape, dtype=np.float32).astype(dtype, copy=False)
    w = rng.standard_normal(geo.w_shape, dtype=np.float32).astype(dtype, copy=False)
    b = rng.standard_normal(geo.k, dtype=np.float32).astype(dtype, copy=False)
    dy = rng.standard_normal(geo.y_shape, dtype=np.float32).astype(dtype, copy=False) if backward else None
    candidates = CANDIDATES if geo.unit_stride else ("im2col",)
    return {alg: _time_candidate(geo, alg, x, w, b, dy) for alg in candidates}


def select(geo: ConvGeometry, dtype, backward: bool) -> str:
    """The algorithm a conv2d asked for "auto" runs: the table's entry for the call if there is one ("im2col" or
    "rowshift" for all three passes, or "auto"), else (autotune on) the fastest candidate, measured now and kept in
    the table, else "auto" itself: the kernels then pick per pass by ``dispatch.choose``. ``backward``: whether a
    gradient of x or w will be asked for (then the timing includes both backward passes)."""
    if not runtime.autotune and not runtime.algorithms:  # the default: no key to build, no lock to take
        return "auto"
    k = key(geo, dtype, backward)
    chosen = runtime.algorithms.get(k)
    if chosen is not None:
        return chosen
    if not runtime.autotune:
        return "auto"
    # Measured outside the lock (other threads' convolutions go on); if two threads time the same key at once,
    # the first to finish decides for both, so a key never maps to two algorithms.
    times = measure(geo, dtype, backward)
    fastest = min(times, key=times.get)
    with runtime.lock:
        chosen = runtime.algorithms.setdefault(k, fastest)
        runtime.timings.setdefault(k, times)
    return chosen
