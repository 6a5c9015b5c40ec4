"""Per-layer timings: forward, grad-input and grad-weight of numcnn's kernels (called the way the autograd
Functions call them in training) against the matching ATen ops of PyTorch, on the same arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..kernels import conv as KC
from ..kernels import norm as KN
from ..kernels import pool as KP
from ._timing import interleaved, summary, time_once


@dataclass(frozen=True)
class ConvCase:
    name: str
    c: int
    k: int
    hw: int
    kernel: int
    stride: int = 1
    pad: int = 0
    groups: int = 1

    def shrink(self, hw: int, channels: int) -> ConvCase:
        """The same layer with fewer channels and a smaller image (the kernel and the geometry kept)."""
        g = 1 if self.groups == 1 else min(self.groups, channels)
        c = min(self.c, channels) if g == 1 else g
        k = min(self.k, channels) if g == 1 else g
        return ConvCase(self.name, c, k, max(hw, self.kernel), self.kernel, self.stride, self.pad, g)

    def out_hw(self) -> int:
        return KC.conv_output_size(self.hw, self.kernel, self.stride, 2 * self.pad, 1)

    def flops(self, n: int) -> float:
        """Multiply-adds x 2 of one pass (forward, grad-input and grad-weight each cost the same)."""
        return 2.0 * n * self.k * (self.c // self.groups) * self.kernel**2 * self.out_hw() ** 2


CONV_CASES = (
    ConvCase("conv 1->16 5x5 pad 2, 28x28", 1, 16, 28, 5, 1, 2),
    ConvCase("conv 16->32 5x5 pad 2, 14x14", 16, 32, 14, 5, 1, 2),
    ConvCase("conv 64->64 3x3 pad 1, 32x32", 64, 64, 32, 3, 1, 1),
    ConvCase("conv 64->128 3x3 stride 2, 32x32", 64, 128, 32, 3, 2, 1),
    ConvCase("depthwise 64 3x3 pad 1, 32x32", 64, 64, 32, 3, 1, 1, 64),
)
POOL_SHAPE = (32, 28, 28)  # max-pool 2x2 stride 2 on (N, 32, 28, 28)
BN_SHAPE = (32, 28, 28)  # BatchNorm2d(32) in training mode on (N, 32, 28, 28)
NAIVE_REDUCED = dict(n=1, channels=2, hw=8)  # the 7-loop reference runs only at this size


def _rel_err(a, b) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


def _channel_major(a: np.ndarray) -> np.ndarray:
    """The same values laid out like a conv output: a (C, N, H, W) buffer seen as NCHW."""
    return np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


def _conv_arrays(case: ConvCase, n: int, rng: np.random.Generator):
    x = rng.standard_normal((n, case.c, case.hw, case.hw)).astype(np.float32)
    w = (rng.standard_normal((case.k, case.c // case.groups, case.kernel, case.kernel)) * 0.1).astype(np.float32)
    b = rng.standard_normal(case.k).astype(np.float32)
    ho = case.out_hw()
    dy = _channel_major(rng.standard_normal((n, case.k, ho, ho)).astype(np.float32))
    return x, w, b, dy


def _geometry(case: ConvCase):
    return (case.stride,) * 2, ((case.pad, case.pad),) * 2, (1, 1), case.groups


def _numcnn_conv_ops(case: ConvCase, x, w, b, dy, algorithm: str):
    geo = _geometry(case)
    keep = KC.canonical(algorithm) != "reference"
    _, cols = KC.conv2d_forward(x, w, b, *geo, algorithm=algorithm, return_cols=True) if keep else (None, None)
    return {
        "forward": lambda: KC.conv2d_forward(x, w, b, *geo, algorithm=algorithm),
        "grad-input": lambda: KC.conv2d_backward_input(dy, w, x.shape, *geo, algorithm=algorithm),
        # As in training: the forward's columns when it kept them, else rebuilt from x.
        "grad-weight": lambda: KC.conv2d_backward_weight(dy, x, w.shape, *geo, algorithm=algorithm, cols=cols),
    }


def _auto_choice(case: ConvCase, x, op: str) -> str:
    """The kernel ``"auto"`` runs for this pass (an inference forward; grad-weight reuses a training
    forward's columns when it kept them)."""
    w_shape = (case.k, case.c // case.groups, case.kernel, case.kernel)
    plan = KC.plan(KC.ConvGeometry.of(x.shape, w_shape, *_geometry(case)))
    return {"forward": plan.forward, "grad-input": plan.input, "grad-weight": plan.weight}[op]


def _torch_conv_ops(case: ConvCase, x, w, b, dy):
    import torch

    tx, tw, tb, tdy = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, w, b, dy))
    s, p = [case.stride] * 2, [case.pad] * 2
    back = torch.ops.aten.convolution_backward

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, s, p, 1, case.groups)

    return {
        "forward": fwd,
        "grad-input": lambda: back(tdy, tx, tw, None, s, p, [1, 1], False, [0, 0], case.groups,
                                   [True, False, False])[0],
        "grad-weight": lambda: back(tdy, tx, tw, None, s, p, [1, 1], False, [0, 0], case.groups,
                                    [False, True, False])[1],
    }


def conv_rows(n: int, reps: int, use_torch: bool, gemm_gflops: float, smoke: bool, rng) -> list[dict]:
    rows = []
    for full in CONV_CASES:
        case = full.shrink(10, 4) if smoke else full
        x, w, b, dy = _conv_arrays(case, n, rng)
        ours = _numcnn_conv_ops(case, x, w, b, dy, "auto")  # what nn.Conv2d runs by default
        theirs = _torch_conv_ops(case, x, w, b, dy) if use_torch else {}
        small = case.shrink(NAIVE_REDUCED["hw"], NAIVE_REDUCED["channels"])
        sx, sw, sb, sdy = _conv_arrays(small, NAIVE_REDUCED["n"], rng)
        naive = _numcnn_conv_ops(small, sx, sw, sb, sdy, "naive")
        naive_fast = _numcnn_conv_ops(small, sx, sw, sb, sdy, "im2col")
        for op in ("forward", "grad-input", "grad-weight"):
            fns = {"numcnn": ours[op]}
            if use_torch:
                fns["torch"] = theirs[op]
            times = interleaved(fns, reps)
            row = {"section": "layer", "name": case.name, "op": op, "shape": [n, case.c, case.hw, case.hw],
                   "algorithm": _auto_choice(case, x, op), "flops": case.flops(n), "numcnn": summary(times["numcnn"])}
            row["numcnn"]["gflops"] = case.flops(n) / row["numcnn"]["median_ms"] / 1e6
            row["numcnn"]["gemm_fraction"] = row["numcnn"]["gflops"] / gemm_gflops
            if use_torch:
                row["torch"] = summary(times["torch"])
                row["torch"]["gflops"] = case.flops(n) / row["torch"]["median_ms"] / 1e6
                row["ratio"] = row["numcnn"]["median_ms"] / row["torch"]["median_ms"]
                row["err_vs_torch"] = _rel_err(ours[op](), theirs[op]().numpy())
            naive_s = time_once(naive[op], 1 if not smoke else 1)
            row["naive_reduced"] = {
                "shape": [NAIVE_REDUCED["n"], small.c, small.hw, small.hw], "k": small.k,
                "median_ms": naive_s * 1e3, "gflops": small.flops(NAIVE_REDUCED["n"]) / naive_s / 1e9,
                "err_vs_fast": _rel_err(naive[op](), naive_fast[op]()),
            }
            rows.append(row)
    return rows


def pool_bn_rows(n: int, reps: int, use_torch: bool, smoke: bool, rng) -> list[dict]:
    c, h, w = (4, 8, 8) if smoke else POOL_SHAPE
    x = _channel_major(rng.standard_normal((n, c, h, w)).astype(np.float32))
    x = np.maximum(x, 0)  # pooling follows a ReLU in these nets: many tied zeros
    # what nn.MaxPool2d runs in training (compiled with the numba backend, else the NumPy values-only pair)
    y, saved = KP.max_pool2d_train_forward(x, (2, 2), (2, 2), (0, 0))
    dy = _channel_major(rng.standard_normal(y.shape).astype(np.float32))
    ours = {"forward": lambda: KP.max_pool2d_train_forward(x, (2, 2), (2, 2), (0, 0))[0],
            "grad-input": lambda: KP.max_pool2d_train_backward(dy, saved, (2, 2), (2, 2), (0, 0))}
    c2, h2, w2 = (4, 8, 8) if smoke else BN_SHAPE
    xb = _channel_major(rng.standard_normal((n, c2, h2, w2)).astype(np.float32))
    gamma, beta = rng.standard_normal(c2).astype(np.float32), rng.standard_normal(c2).astype(np.float32)
    _, mean, invstd = KN.batch_norm_train_forward(xb, gamma, beta, 1e-5, (0, 2, 3))
    dyb = _channel_major(rng.standard_normal(xb.shape).astype(np.float32))
    ours_bn = {"forward": lambda: KN.batch_norm_train_forward(xb, gamma, beta, 1e-5, (0, 2, 3))[0],
               "grad-input": lambda: KN.batch_norm_backward(dyb, xb, mean, invstd, gamma, (0, 2, 3))[0]}
    theirs, theirs_bn = {}, {}
    if use_torch:
        import torch

        tx, tdy = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(dy))
        _, idx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)

        def t_pool():
            with torch.no_grad():
                return torch.nn.functional.max_pool2d(tx, 2)

        theirs = {"forward": t_pool, "grad-input": lambda: torch.ops.aten.max_pool2d_with_indices_backward(
            tdy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)}
        txb, tdyb = torch.from_numpy(np.ascontiguousarray(xb)), torch.from_numpy(np.ascontiguousarray(dyb))
        tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
        rm, rv = torch.zeros(c2), torch.ones(c2)
        _, smean, sinv = torch.ops.aten.native_batch_norm(txb, tg, tb, rm.clone(), rv.clone(), True, 0.1, 1e-5)
        theirs_bn = {
            "forward": lambda: torch.ops.aten.native_batch_norm(txb, tg, tb, rm, rv, True, 0.1, 1e-5)[0],
            "grad-input": lambda: torch.ops.aten.native_batch_norm_backward(
                tdyb, txb, tg, rm, rv, smean, sinv, True, 1e-5, [True, True, True])[0],
        }
    rows = []
    for name, shape, mine, other in (("max-pool 2x2 stride 2", x.shape, ours, theirs),
                                     ("BatchNorm2d (training)", xb.shape, ours_bn, theirs_bn)):
        for op in ("forward", "grad-input"):
            fns = {"numcnn": mine[op]}
            if use_torch:
                fns["torch"] = other[op]
            times = interleaved(fns, reps)
            row = {"section": "layer", "name": name, "op": op, "shape": list(shape), "numcnn": summary(times["numcnn"])}
            if use_torch:
                row["torch"] = summary(times["torch"])
                row["ratio"] = row["numcnn"]["median_ms"] / row["torch"]["median_ms"]
                row["err_vs_torch"] = _rel_err(mine[op](), other[op]().numpy())
            rows.append(row)
    return rows
