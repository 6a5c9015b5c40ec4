"""The benchmark's outputs: the printed table, bench.json and a bar chart (matplotlib, imported only here)."""

from __future__ import annotations

import io
import json
import os

from .._io import atomic_write


def _mb(entry: dict) -> str:
    return f"{entry['mb']:.0f}" if entry.get("mb") is not None else "err"


def _ms(entry: dict | None) -> str:
    if not entry or "median_ms" not in entry:
        return "-"
    v = entry["median_ms"]
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def format_table(rows: list[dict], gemm_gflops: float) -> str:
    """Fixed-width table; one line per (layer or network, op)."""
    head = (f"{'what':42s} {'op':26s} {'numcnn ms':>10s} {'torch ms':>9s} {'ratio':>6s} "
            f"{'GFLOP/s':>8s} {'%GEMM':>6s} {'naive ms*':>10s} {'naive GF/s*':>11s} {'err':>8s}")
    lines = [head, "-" * len(head)]
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            if section == "memory":
                lines.append(f"{'what':42s} {'':26s} {'numcnn MB':>10s} {'torch MB':>9s} {'ratio':>6s}  "
                             "(peak resident set size, each library in its own process)")
        if section == "memory":
            ours, theirs = r.get("numcnn", {}), r.get("torch", {})
            ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
            lines.append(f"{r['name']:42s} {r['op']:26s} {_mb(ours):>10s} {_mb(theirs) if theirs else '-':>9s} "
                         f"{ratio:>6s}")
            continue
        ours = r["numcnn"]
        gf = f"{ours['gflops']:.1f}" if "gflops" in ours else "-"
        frac = f"{100 * ours['gflops'] / gemm_gflops:.0f}%" if "gflops" in ours else "-"
        naive = r.get("naive_reduced")
        nms = _ms(naive) if naive else "-"
        ngf = f"{naive['gflops']:.4f}" if naive else "-"
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        err = f"{r['err_vs_torch']:.1e}" if "err_vs_torch" in r else "-"
        extra = ""
        if r["section"] == "inference":
            extra = f"  ({ours['images_per_s']:.0f} img/s)"
        op = f"{r['op']} ({r['algorithm']})" if "algorithm" in r else r["op"]
        lines.append(f"{r['name']:42s} {op:26s} {_ms(ours):>10s} {_ms(r.get('torch')):>9s} {ratio:>6s} "
                     f"{gf:>8s} {frac:>6s} {nms:>10s} {ngf:>11s} {err:>8s}{extra}")
    return "\n".join(lines)


def write_markdown(path: str, result: dict) -> None:
    """The run as a Markdown page: when, on what machine, with which settings, and the table."""
    meta = result["meta"]
    blas = "; ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in meta["blas"]) or "none"
    env = ", ".join(f"{k}={v}" for k, v in meta["env"].items() if v is not None) or "none set"
    gemm = meta["gemm"]
    lines = [
        "# numcnn performance",
        "",
        "Made by `numcnn bench --markdown` (numcnn/bench): every figure below is a median of interleaved "
        "repetitions, numcnn and PyTorch in the same process on the same arrays; ratio = numcnn time / PyTorch time. "
        "Regenerate it rather than editing it: measured figures live here, dated and named by machine, never in the "
        "code's comments.",
        "",
        f"- date: {meta['time']}",
        f"- machine: {meta['cpu']}, {meta['cpus']} CPUs ({meta['machine']}), Python {meta['python']}, "
        f"NumPy {meta['numpy']}" + (f", PyTorch {meta['torch']}" if "torch" in meta else ""),
        f"- BLAS: {blas}; float32 GEMM {gemm['n']}x{gemm['n']}: numpy {gemm['numpy']:.1f} GFLOP/s"
        + (f", torch {gemm['torch']:.1f} GFLOP/s" if "torch" in gemm else ""),
        f"- kernels: {meta.get('numcnn_kernels', 'numpy')}; threads: numcnn {meta['numcnn_threads']}"
        + (f", PyTorch {meta['torch_threads']}" if "torch" in meta else "")
        + f"; memory budget {meta['numcnn_memory_budget_mb']:.0f} MiB; environment: {env}",
        f"- batch {meta['batch']}, medians of >= {meta['reps']} repetitions" + (" (smoke run)" if meta["smoke"]
                                                                               else ""),
        "",
        "```",
        format_table(result["rows"], gemm["numpy"]),
        "```",
        "",
    ]
    extra = result.get("notes")
    if extra:
        lines += [extra, ""]
    atomic_write(path, "\n".join(lines).encode())


def write_json(path: str, result: dict) -> None:
    atomic_write(path, (json.dumps(result, indent=2) + "\n").encode())


def write_png(path: str, rows: list[dict]) -> str | None:
    """A horizontal bar chart of numcnn vs PyTorch times (log scale) and peak memory. Returns a note when
    matplotlib is not installed instead of failing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (pip install numcnn[cli])"
    timed = [r for r in rows if r["section"] != "memory"]
    mem = [r for r in rows if r["section"] == "memory" and r.get("numcnn", {}).get("mb") is not None]
    panels = [p for p in (timed, mem) if p]
    if not panels:
        return "nothing to draw"
    fig, axes = plt.subplots(1, len(panels), figsize=(7 + 7 * len(panels), 0.32 * max(map(len, panels)) + 2),
                             gridspec_kw={"width_ratios": [3, 1]} if len(panels) == 2 else None, squeeze=False)
    for ax, panel in zip(axes[0], panels):
        is_mem = panel is mem
        value = (lambda e: e.get("mb") or 0) if is_mem else (lambda e: e.get("median_ms", 0))
        labels = ([f"{r['name'].replace(' peak RSS', '')}: {r['op']}" for r in panel] if is_mem
                  else [f"{r['name']} - {r['op']}" for r in panel])
        ys = range(len(panel))
        ax.barh([y + 0.2 for y in ys], [value(r["numcnn"]) for r in panel], 0.4, label="numcnn")
        if any("torch" in r for r in panel):
            ax.barh([y - 0.2 for y in ys], [value(r.get("torch", {})) for r in panel], 0.4, label="PyTorch")
        ax.set_yticks(list(ys), labels, fontsize=7)
        ax.invert_yaxis()
        if is_mem:
            ax.set_xlabel("peak resident memory (MB)")
        else:
            ax.set_xscale("log")
            ax.set_xlabel("median time (ms, log scale)")
        ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, png.getvalue())
    return None


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path
