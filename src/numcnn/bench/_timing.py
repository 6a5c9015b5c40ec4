"""Interleaved timing in short blocks (A A A, B B B, A A A, ...) so that both sides see the same machine load,
reported as medians.

Why blocks and pauses rather than strict A B A B: BLAS and OpenMP worker threads keep spinning for a while
after a call returns (OpenBLAS about 0.1 s). Alternating every call makes each library run beside the
other's spinning threads; on a 2-core machine that slowed both sides 10-50x (a 0.37 ms numcnn inference
took 3.7 ms, PyTorch's 0.26 ms took 14 ms). So each side runs a block of calls after a pause that lets the
other side's threads go to sleep, the first call of a block of short calls is not timed, and the order of
the sides alternates from round to round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

# Aim for blocks of about this many seconds of timed calls: a training loop runs steps back to back, and the
# first calls after a pause run slower on both sides (caches and clocks wake up), so a block holds several.
BLOCK_S = 0.25
# Pause before each block: longer than OpenBLAS's default spin-wait. The smoke mode sets it to 0.
settings = {"settle_s": 0.15}


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2,
                settle: float | None = None) -> dict[str, list[float]]:
    """Time every callable at least ``reps`` times, interleaved in blocks; returns the seconds per call."""
    settle = settings["settle_s"] if settle is None else settle
    items = list(fns.items())
    estimate = {}
    for name, fn in items:
        calls = []
        for _ in range(max(1, warmup)):
            t0 = time.perf_counter()
            fn()
            calls.append(time.perf_counter() - t0)
        estimate[name] = statistics.median(calls)
    block = {name: max(1, min(10, math.ceil(BLOCK_S / max(t, 1e-6)))) for name, t in estimate.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    rnd = 0
    while any(len(times[name]) < reps for name in fns):
        for name, fn in items if rnd % 2 == 0 else items[::-1]:
            if len(times[name]) >= reps:
                continue
            if settle:
                time.sleep(settle)
            if block[name] > 1:
                fn()  # a short call right after the pause is not typical: caches hold the other side's data
            for _ in range(min(block[name], reps - len(times[name]))):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        rnd += 1
    return times


def summary(seconds: list[float]) -> dict[str, float]:
    """Median and quartiles in milliseconds."""
    ms = sorted(s * 1e3 for s in seconds)
    if len(ms) >= 4:
        q1, _, q3 = statistics.quantiles(ms, n=4)
    else:
        q1, q3 = ms[0], ms[-1]
    return {"median_ms": statistics.median(ms), "q1_ms": q1, "q3_ms": q3, "reps": len(ms)}


def time_once(fn: Callable[[], object], reps: int) -> float:
    """Median seconds of ``reps`` calls (after one warm-up), for things with no counterpart to interleave."""
    fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)
