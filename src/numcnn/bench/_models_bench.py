"""Whole-network timings: a training step (forward, loss, backward, Adam step), inference throughput and
batch-1 latency, and the peak resident memory of a training step, each measured for numcnn and PyTorch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from ._models import copy_weights, numcnn_model, torch_model
from ._timing import interleaved, summary


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)


def _numcnn_step(model, x, y):
    import numcnn
    from numcnn.nn import functional as F

    opt = numcnn.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = numcnn.tensor(x), numcnn.tensor(y)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def _torch_step(model, x, y):
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return float(loss.item())

    return step


def train_rows(models: tuple[str, ...], n: int, reps: int, use_torch: bool) -> list[dict]:
    import numcnn

    rows = []
    x, y = _data(n)
    for name in models:
        numcnn.manual_seed(0)
        ours = numcnn_model(name)
        fns = {"numcnn": _numcnn_step(ours, x, y)}
        row = {"section": "train", "name": f"{name} training step", "op": "fwd+loss+bwd+Adam", "shape": [n, 1, 28, 28]}
        if use_torch:
            theirs = torch_model(name)
            row["same_weights"] = copy_weights(ours, theirs)
            fns["torch"] = _torch_step(theirs, x, y)
            # One step each from the same weights: the losses must agree before timing means anything.
            loss_ours, loss_theirs = fns["numcnn"](), fns["torch"]()
            row["first_loss"] = {"numcnn": loss_ours, "torch": loss_theirs}
            row["err_vs_torch"] = abs(loss_ours - loss_theirs) / max(1.0, abs(loss_theirs))
        times = interleaved(fns, reps)
        row["numcnn"] = summary(times["numcnn"])
        if use_torch:
            row["torch"] = summary(times["torch"])
            row["ratio"] = row["numcnn"]["median_ms"] / row["torch"]["median_ms"]
        rows.append(row)
    return rows


def inference_rows(name: str, batches: tuple[int, ...], reps: int, use_torch: bool) -> list[dict]:
    import numcnn

    numcnn.manual_seed(0)
    ours = numcnn_model(name).eval()
    theirs = None
    if use_torch:
        import torch

        theirs = torch_model(name).eval()
        copy_weights(ours, theirs)
    rows = []
    for n in batches:
        x, _ = _data(n, seed=1)
        tx_ours = numcnn.tensor(x)

        def run_ours(tx_ours=tx_ours):
            with numcnn.no_grad():
                return ours(tx_ours).numpy()

        fns = {"numcnn": run_ours}
        if use_torch:
            tx = torch.from_numpy(x)

            def run_theirs(tx=tx):
                with torch.inference_mode():
                    return theirs(tx).numpy()

            fns["torch"] = run_theirs
        what = "latency" if n == 1 else "throughput"
        row = {"section": "inference", "name": f"{name} inference batch {n} ({what})", "op": "eval forward",
               "shape": [n, 1, 28, 28]}
        times = interleaved(fns, reps * (5 if n == 1 else 1))
        for lib in fns:
            row[lib] = summary(times[lib])
            row[lib]["images_per_s"] = n / (row[lib]["median_ms"] / 1e3)
        if use_torch:
            row["ratio"] = row["numcnn"]["median_ms"] / row["torch"]["median_ms"]
            a, b = run_ours(), run_theirs()
            row["err_vs_torch"] = float(np.abs(a - b).max() / max(1.0, np.abs(b).max()))
        rows.append(row)
    return rows


# -- peak memory, each library in its own process ------------------------------------------------------------


def _status_kb(field: str) -> int:
    """A size from /proc/self/status in kB: VmRSS (resident now) or VmHWM (peak since exec or reset)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0  # pragma: no cover - not Linux


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak covers the training steps only."""
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY)  # a kernel control file, not a file we save
        try:
            os.write(fd, b"5")
        finally:
            os.close(fd)
        return True
    except OSError:  # pragma: no cover - old kernel or no permission: the peak then includes the imports
        return False


def rss_child(lib: str, name: str, n: int, threads: int | None) -> dict:
    """Run in a fresh interpreter: import the library, build the model, the data and Adam, take one warm-up
    step, then three more. Two measures (MB), since allocator caches and lazily loaded library parts make any
    single one partial:

    - ``total_mb``: peak resident size minus the size right after the imports (numcnn's with Numba when the
      compiled kernels run, torch's): everything training needs, weights, optimizer state, activations,
      gradients, scratch, caches, lazily initialised library state (for numcnn's compiled kernels that includes
      LLVM's, set up when the first kernel loads: about 70 MB);
    - ``step_mb``: peak during the last three steps minus the size after the warm-up step: what a steady-state
      step adds on top of what stays allocated.

    Peaks are VmHWM reset through /proc/self/clear_refs, not getrusage's ru_maxrss (which survives exec and so
    starts at the parent's size).
    """
    if threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    if lib == "numcnn":
        import numcnn
        from numcnn.kernels import jit
        from numcnn.nn import functional  # noqa: F401  (what a step imports, before the baseline)

        jit.use_compiled()  # imports Numba (54 MB here) when the compiled kernels will run: an import, as torch's is
        if threads:
            numcnn.set_num_threads(threads)
    else:
        import torch

        if threads:
            torch.set_num_threads(threads)
    base = _status_kb("VmRSS")
    reset = _reset_peak()
    x, y = _data(n)
    if lib == "numcnn":
        numcnn.manual_seed(0)
        step = _numcnn_step(numcnn_model(name), x, y)
    else:
        step = _torch_step(torch_model(name), x, y)
    step()
    warm, warm_peak = _status_kb("VmRSS"), _status_kb("VmHWM")
    _reset_peak()
    for _ in range(3):
        step()
    peak = _status_kb("VmHWM")
    return {"base_mb": base / 1024, "after_warmup_mb": warm / 1024, "peak_mb": max(peak, warm_peak) / 1024,
            "total_mb": (max(peak, warm_peak) - base) / 1024, "step_mb": (peak - warm) / 1024, "peak_reset": reset}


def memory_rows(models: tuple[str, ...], n: int, use_torch: bool, threads: int | None) -> list[dict]:
    if not os.path.exists("/proc/self/status"):  # pragma: no cover - RSS is read from /proc
        return []
    rows = []
    for name in models:
        results = {}
        for lib in ("numcnn", "torch") if use_torch else ("numcnn",):
            cmd = [sys.executable, "-m", "numcnn.bench", "--rss-child", lib, name, str(n)]
            if threads:
                cmd += ["--threads", str(threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=_child_env())
            if out.returncode != 0:
                results[lib] = {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
            else:
                results[lib] = json.loads(out.stdout.strip().splitlines()[-1])
        for key, what in (("total_mb", "training memory above imports"), ("step_mb", "steady-state step")):
            row = {"section": "memory", "name": f"{name} peak RSS", "op": what, "key": key, "shape": [n, 1, 28, 28]}
            for lib, res in results.items():
                row[lib] = dict(res, mb=res.get(key))
            # below 1 MB (tiny smoke sizes) a resident-set difference is page noise, not a ratio worth printing
            if use_torch and row["numcnn"].get("mb") is not None and (row["torch"].get("mb") or 0) >= 1:
                row["ratio"] = row["numcnn"]["mb"] / row["torch"]["mb"]
            rows.append(row)
    return rows


def _child_env() -> dict:
    env = dict(os.environ)
    # The child must import this very numcnn, also when it runs from a source tree.
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
