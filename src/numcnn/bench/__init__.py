"""``numcnn bench``: numcnn against PyTorch on the CPU, side by side, in one process.

What it measures (medians of ``--reps`` interleaved repetitions, A B A B ..., after warm-up):

1. per layer at batch ``--batch``: forward, grad-input and grad-weight of five convolutions (1->16 5x5 on 28x28,
   16->32 5x5 on 14x14, 64->64 3x3 on 32x32, 64->128 3x3 stride 2, depthwise 3x3), max-pool 2x2 and
   BatchNorm2d, with GFLOP/s and their fraction of the measured float32 GEMM rate. numcnn's convolutions run
   ``algorithm="auto"`` (what ``nn.Conv2d`` runs; the table names the algorithm each pass took). numcnn's
   ``naive`` 7-loop reference is timed too, but only on a reduced size (batch 1, at most 2 channels, 8x8),
   since it runs at a few MFLOP/s;
2. a full training step (forward, cross-entropy, backward, Adam step) of ``convnet``, ``lenet5`` and ``resnet``;
3. ``convnet`` inference (``model.eval()``, no fusing) at batch 256 and batch-1 latency;
4. the peak resident memory of a training step, numcnn and PyTorch each in a fresh process.

PyTorch runs on the same arrays, the same weights and the same thread count; without torch its column is
left out. Every timed output is checked against PyTorch (and the naive kernels against the fast ones); a
disagreement makes the run fail. Results go to ``OUT/bench.json`` and ``OUT/bench.png``.

    python -m numcnn.bench --out bench          # the full run (a few minutes)
    python -m numcnn.bench --smoke --out /tmp/b  # tiny sizes, a few seconds: does it run, do outputs agree
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time

import numpy as np

from . import _timing
from ._timing import interleaved

__all__ = ["add_arguments", "main", "run"]

ENV_VARS = ("NUMCNN_KERNELS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
            "OPENBLAS_L2_SIZE", "NUMCNN_MEMORY_BUDGET_MB")
SECTIONS = ("layers", "train", "inference", "memory")
# Largest acceptable disagreement, relative to max(1, max |reference|).
TOLERANCE = {"layer": 1e-3, "naive": 1e-4, "train": 1e-4, "inference": 1e-4}


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark's options to ``parser`` (the ``numcnn bench`` subcommand uses this too)."""
    parser.add_argument("--out", default="bench", help="folder for bench.json and bench.png (default: bench)")
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions per measurement (default: 20)")
    parser.add_argument("--batch", type=int, default=100, help="batch size of layers and training steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="numcnn, BLAS and PyTorch threads (default: numcnn.get_num_threads(), the CPUs "
                             "this process may use)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and 3 repetitions: checks that it runs and that outputs agree")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=None, help="run only these sections")
    parser.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch even if installed")
    parser.add_argument("--no-png", action="store_true", help="do not draw bench.png")
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="also write the results as a dated Markdown report naming the machine (this is how "
                             "docs/performance.md is made)")
    parser.add_argument("--settle", type=float, default=0.15,
                        help="seconds to pause before each timed block so the other library's spinning worker "
                             "threads go to sleep (default: 0.15; 0 in --smoke)")
    parser.add_argument("--rss-child", nargs=3, metavar=("LIB", "MODEL", "BATCH"), help=argparse.SUPPRESS)
    return parser


def _torch_available(disabled: bool) -> bool:
    if disabled:
        return False
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")
    except OSError:
        return platform.processor() or "unknown"


def _settings(use_torch: bool, threads: int | None, stack: contextlib.ExitStack) -> dict:
    """Apply the thread count to both libraries (restored when ``stack`` closes) and describe the run."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import numcnn

    from ..kernels.runtime import runtime

    if threads:
        stack.enter_context(threadpool_limits(limits=threads))
        stack.callback(numcnn.set_num_threads, numcnn.get_num_threads())
        numcnn.set_num_threads(threads)
    blas = [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for info in threadpool_info() if info.get("user_api") == "blas"]
    meta = {
        "numcnn": numcnn.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu": _cpu_model(), "cpus": os.cpu_count(), "blas": blas,
        "numcnn_threads": numcnn.get_num_threads(), "numcnn_kernels": runtime.backend,
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "numcnn_memory_budget_mb": runtime.memory_budget / 2**20,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if use_torch:
        import torch

        stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(threads or numcnn.get_num_threads())
        meta["torch"] = torch.__version__
        meta["torch_threads"] = torch.get_num_threads()
    return meta


def _gemm_rate(n: int, reps: int, use_torch: bool) -> dict:
    """float32 (n, n) @ (n, n): the practical peak of this machine's BLAS, which every GFLOP/s is read against."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    fns = {"numpy": lambda: a @ b}
    if use_torch:
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        fns["torch"] = lambda: ta @ tb
    times = interleaved(fns, reps)
    return {lib: 2.0 * n**3 / float(np.median(t)) / 1e9 for lib, t in times.items()} | {"n": n}


def _failures(rows: list[dict]) -> list[str]:
    bad = []
    for r in rows:
        kind = "layer" if r["section"] == "layer" else r["section"]
        if "err_vs_torch" in r and r["err_vs_torch"] > TOLERANCE.get(kind, 1e-3):
            bad.append(f"{r['name']} {r['op']}: numcnn and PyTorch differ by {r['err_vs_torch']:.2e}")
        naive = r.get("naive_reduced")
        if naive and naive["err_vs_fast"] > TOLERANCE["naive"]:
            bad.append(f"{r['name']} {r['op']}: naive and im2col differ by {naive['err_vs_fast']:.2e}")
    return bad


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed ``args``; 0 when every output agreed, 1 otherwise.
    Thread settings changed by ``--threads`` are restored on return."""
    from . import _models_bench

    if args.rss_child:
        import json

        lib, model, batch = args.rss_child
        print(json.dumps(_models_bench.rss_child(lib, model, int(batch), args.threads)))
        return 0
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    from . import _layers, _models_bench, _report

    use_torch = _torch_available(args.no_torch)
    meta = _settings(use_torch, args.threads, stack)
    smoke = args.smoke
    reps = min(args.reps, 3) if smoke else args.reps
    _timing.settings["settle_s"] = 0.0 if smoke else args.settle
    stack.callback(_timing.settings.update, {"settle_s": 0.15})
    n = 2 if smoke else args.batch
    sections = set(args.only or SECTIONS)
    meta.update(smoke=smoke, reps=reps, batch=n, settle_s=_timing.settings["settle_s"])

    print(f"numcnn {meta['numcnn']} bench ({'smoke' if smoke else 'full'}): numpy {meta['numpy']}, "
          f"{'torch ' + meta['torch'] if use_torch else 'no torch'}, python {meta['python']}, {meta['cpus']} CPUs")
    for info in meta["blas"]:
        print(f"  BLAS: {info['internal_api']} {info['version']} ({info['architecture']}), "
              f"{info['num_threads']} threads")
    print(f"  numcnn kernel threads: {meta['numcnn_threads']} (batch chunks shared out over threads, each with "
          "single-threaded GEMMs; numcnn.kernels.parallel); kernels: "
          f"{meta['numcnn_kernels']} (NUMCNN_KERNELS)")
    if use_torch:
        print(f"  PyTorch threads: {meta['torch_threads']} (set to numcnn's thread count)")
    env = ", ".join(f"{k}={v}" for k, v in meta["env"].items() if v is not None)
    print(f"  environment: {env or 'none of ' + ', '.join(ENV_VARS) + ' is set'}")
    print(f"  numcnn workspace budget: {meta['numcnn_memory_budget_mb']:.0f} MiB; medians of >= {reps} "
          f"repetitions, interleaved in blocks with {meta['settle_s']:.2f} s pauses (see numcnn.bench._timing)")

    gemm = _gemm_rate(256 if smoke else 1024, reps, use_torch)
    meta["gemm"] = gemm
    print(f"  float32 GEMM {gemm['n']}x{gemm['n']}: numpy {gemm['numpy']:.1f} GFLOP/s"
          + (f", torch {gemm['torch']:.1f} GFLOP/s" if use_torch else ""))
    print(flush=True)

    rng = np.random.default_rng(0)
    rows: list[dict] = []
    models = ("convnet", "lenet5", "resnet")
    if "layers" in sections:
        rows += _layers.conv_rows(n, reps, use_torch, gemm["numpy"], smoke, rng)
        rows += _layers.pool_bn_rows(n, reps, use_torch, smoke, rng)
    if "train" in sections:
        rows += _models_bench.train_rows(models, n, reps, use_torch)
    if "inference" in sections:
        rows += _models_bench.inference_rows("convnet", (4, 1) if smoke else (256, 1), reps, use_torch)
    if "memory" in sections:
        rows += _models_bench.memory_rows(("convnet",) if smoke else ("convnet", "resnet"), n, use_torch,
                                          args.threads)

    print(_report.format_table(rows, gemm["numpy"]))
    print("* naive = numcnn's 7-loop reference kernel, timed on a reduced size only (batch 1, <= 2 channels, 8x8);"
          " ratio = numcnn time / PyTorch time; err = max |numcnn - torch| / max(1, max |torch|)")
    out = _report.ensure_dir(args.out)
    failures = _failures(rows)
    result = {"meta": meta, "rows": rows, "failures": failures}
    _report.write_json(os.path.join(out, "bench.json"), result)
    note = None if args.no_png else _report.write_png(os.path.join(out, "bench.png"), rows)
    if args.markdown:
        _report.write_markdown(args.markdown, result)
        print(f"wrote {args.markdown}")
    print(f"\nwrote {os.path.join(out, 'bench.json')}" + ("" if args.no_png or note else " and bench.png"))
    if note:
        print(note)
    for f in failures:
        print(f"MISMATCH: {f}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m numcnn.bench [options]``; returns the exit status."""
    parser = add_arguments(argparse.ArgumentParser(prog="numcnn bench", description=__doc__,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter))
    return run(parser.parse_args(argv))
