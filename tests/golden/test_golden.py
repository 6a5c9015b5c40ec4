"""Golden bits: reshaping the code must not change a single number.

The outputs and gradients of every kernel entry point (each algorithm, both memory layouts), every zoo model
(forward, input gradient, parameter gradients, updated buffers, eval forward) and two Adam steps of convnet, lenet5
and resnet, on fixed seeded inputs, were recorded by ``python tests/golden/test_golden.py --record`` at the commit
before the kernels were reorganised (``golden.json`` names it). For each array it keeps the SHA-256 of its dtype,
shape and bytes (``golden.json``) and up to 512 evenly spaced elements (``golden.npz``). The test recomputes every
case with 1 and 2 kernel threads and a small memory budget (many batch chunks): equal digests are equal bits.

Bits of a GEMM depend on the BLAS build and the CPU kernel it picks: on a machine whose BLAS differs from the one
recorded, the digests cannot be compared and the samples are checked to float tolerance instead.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
SAMPLES, GOLDEN = HERE / "golden.npz", HERE / "golden.json"
SAMPLE = 512
BUDGET = 64 << 10  # bytes: many batch chunks, so the threads really share the work


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _f32(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# ------------------------------------------------------------------------------------------------------------
# kernel cases


CONV_CASES = {
    # name: (x shape, w shape, stride, padding ((t, b), (l, r)), dilation, groups)
    "3x3_same": ((3, 4, 9, 8), (6, 4, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    "5x5_convnet": ((6, 16, 14, 14), (32, 16, 5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "first_layer": ((5, 1, 28, 28), (16, 1, 5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1), 1),
    "strided": ((3, 4, 11, 10), (5, 4, 3, 3), (2, 2), ((1, 0), (1, 1)), (1, 1), 1),
    "stride_gt_kernel": ((2, 3, 9, 9), (4, 3, 2, 2), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),
    "dilated": ((3, 4, 12, 11), (6, 4, 3, 3), (1, 1), ((2, 2), (2, 2)), (2, 2), 1),
    "groups": ((3, 8, 9, 9), (6, 4, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 2),
    "depthwise": ((3, 8, 10, 10), (8, 1, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 8),
    "pointwise": ((4, 16, 7, 7), (24, 16, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),
    "asym_pad": ((2, 3, 8, 9), (4, 3, 2, 3), (1, 1), ((0, 1), (1, 1)), (1, 1), 1),
    "wide": ((4, 32, 14, 14), (32, 32, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
}

TRANSPOSE_CASES = {
    # name: (x shape, w shape, stride, padding, output_padding, dilation, groups)
    "up2": ((2, 6, 5, 5), (6, 4, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),
    "same": ((2, 4, 6, 7), (4, 3, 3, 3), (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "groups_dilated": ((2, 4, 5, 5), (4, 2, 3, 3), (1, 1), (0, 0), (1, 1), (2, 2), 2),
}


def _conv_cases() -> Iterator[tuple[str, Callable[[], dict]]]:
    from numcnn.kernels import conv as K

    def out_hw(xs, ws, stride, padding, dilation):
        return tuple(K.conv_output_size(xs[2 + i], ws[2 + i], stride[i], sum(padding[i]), dilation[i])
                     for i in range(2))

    for name, (xs, ws, stride, padding, dilation, groups) in CONV_CASES.items():
        algorithms = ["naive", "im2col", "auto"] + (["rowshift"] if stride == (1, 1) else [])
        if name in ("5x5_convnet", "wide"):
            algorithms.remove("naive")  # the loops take seconds here; the faster ones are checked against them
        for layout in ("nchw", "channel_major"):
            for alg in algorithms:
                def run(xs=xs, ws=ws, stride=stride, padding=padding, dilation=dilation, groups=groups, alg=alg,
                        layout=layout, name=name):
                    rng = _rng(name)
                    x, w, b = _f32(rng, *xs), _f32(rng, *ws), _f32(rng, ws[0])
                    dy = _f32(rng, xs[0], ws[0], *out_hw(xs, ws, stride, padding, dilation))
                    if layout == "channel_major":  # as a conv's output is laid out: a view of (C, N, H, W) memory
                        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
                        dy = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
                    args = (stride, padding, dilation, groups)
                    out = {"y": K.conv2d_forward(x, w, b, *args, algorithm=alg),
                           "dx": K.conv2d_backward_input(dy, w, xs, *args, algorithm=alg),
                           "dw": K.conv2d_backward_weight(dy, x, ws, *args, algorithm=alg),
                           "db": K.conv2d_backward_bias(dy)}
                    if alg != "naive":
                        y, cols = K.conv2d_forward(x, w, b, *args, algorithm=alg, return_cols=True)
                        out["y_train"] = y
                        out["dw_cols"] = K.conv2d_backward_weight(dy, x, ws, *args, algorithm=alg, cols=cols)
                        if cols is not None:
                            cols.release()
                    return out

                if layout == "channel_major" and alg == "naive":
                    continue
                yield f"conv2d/{name}/{layout}/{alg}", run

    for name, (xs, ws, stride, padding, output_padding, dilation, groups) in TRANSPOSE_CASES.items():
        for alg in ("naive", "im2col", "auto", "rowshift") if stride == (1, 1) else ("naive", "im2col", "auto"):
            def run_t(xs=xs, ws=ws, stride=stride, padding=padding, output_padding=output_padding,
                      dilation=dilation, groups=groups, alg=alg, name=name):
                rng = _rng(name)
                x, w, b = _f32(rng, *xs), _f32(rng, *ws), _f32(rng, ws[1] * groups)
                args = (stride, padding, output_padding, dilation, groups)
                y = K.conv_transpose2d_forward(x, w, b, *args, algorithm=alg)
                dy = _f32(rng, *y.shape)
                return {"y": y,
                        "dx": K.conv_transpose2d_backward_input(dy, w, xs, *args, algorithm=alg),
                        "dw": K.conv_transpose2d_backward_weight(dy, x, ws, *args, algorithm=alg)}

            yield f"conv_transpose2d/{name}/{alg}", run_t

    def float64_case():
        rng = _rng("float64")
        x, w = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3))
        dy = rng.standard_normal((2, 4, 7, 7))
        args = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
        return {f"{alg}_{k}": v for alg in ("im2col", "rowshift", "auto") for k, v in {
            "y": K.conv2d_forward(x, w, None, *args, algorithm=alg),
            "dx": K.conv2d_backward_input(dy, w, x.shape, *args, algorithm=alg),
            "dw": K.conv2d_backward_weight(dy, x, w.shape, *args, algorithm=alg)}.items()}

    yield "conv2d/float64", float64_case

    def unfold_case():
        rng = _rng("unfold")
        x = _f32(rng, 2, 3, 8, 7)
        cols = K.im2col(x, (3, 2), (2, 1), ((1, 0), (1, 1)), (1, 2))
        return {"cols": cols, "back": K.col2im(cols, x.shape, (3, 2), (2, 1), ((1, 0), (1, 1)), (1, 2))}

    yield "im2col", unfold_case


def _other_kernel_cases() -> Iterator[tuple[str, Callable[[], dict]]]:
    from numcnn.kernels import activation as A
    from numcnn.kernels import norm as N
    from numcnn.kernels import pool as P
    from numcnn.kernels import softmax as S

    def pools(layout):
        def run():
            rng = _rng("pool")
            x = _f32(rng, 4, 6, 13, 12)
            if layout == "channel_major":
                x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
            out = {}
            for tag, args in {"k2": ((2, 2), (2, 2), (0, 0)), "k3s2p1": ((3, 3), (2, 2), (1, 1)),
                              "ceil": ((3, 2), (2, 2), (1, 0), (1, 1), True), "dil": ((2, 2), (1, 1), (0, 0), (2, 2))
                              }.items():
                y, idx = P.max_pool2d_forward(x, *args)
                dy = _f32(rng, *y.shape)
                out[f"max_{tag}_y"], out[f"max_{tag}_idx"] = y, idx
                out[f"max_{tag}_values"] = P.max_pool2d_values(x, *args)
                out[f"max_{tag}_dx"] = P.max_pool2d_backward(dy, idx, x.shape)
                out[f"max_{tag}_dx_values"] = P.max_pool2d_backward_from_values(dy, x, y, *args)
            for tag, args in {"k2": ((2, 2), (2, 2), (0, 0)), "k3s2p1": ((3, 3), (2, 2), (1, 1), True, False),
                              "div": ((3, 3), (1, 1), (1, 1), False, True, 5)}.items():
                y = P.avg_pool2d_forward(x, *args)
                out[f"avg_{tag}_y"] = y
                out[f"avg_{tag}_dx"] = P.avg_pool2d_backward(_f32(rng, *y.shape), x.shape, *args)
            y = P.adaptive_avg_pool2d_forward(x, (5, 3))
            out["adaptive_y"] = y
            out["adaptive_dx"] = P.adaptive_avg_pool2d_backward(_f32(rng, *y.shape), x.shape)
            return out
        return run

    def norms(layout):
        def run():
            rng = _rng("norm")
            x = _f32(rng, 6, 5, 9, 8) * 3 + 1
            dy = _f32(rng, *x.shape)
            if layout == "channel_major":
                x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
                dy = np.ascontiguousarray(dy.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
            gamma, beta = _f32(rng, 5), _f32(rng, 5)
            y, mean, invstd, var = N.batch_norm_train_forward(x, gamma, beta, 1e-5, (0, 2, 3), return_var=True)
            rm, rv = np.zeros(5, np.float32), np.ones(5, np.float32)
            N.batch_norm_update_running(rm, rv, mean, var, x.size // 5, 0.1)
            dx, dgamma, dbeta = N.batch_norm_backward(dy, x, mean, invstd, gamma, (0, 2, 3))
            ye = N.batch_norm_eval_forward(x, rm, rv, gamma, beta, 1e-5, (0, 2, 3))
            edx, edg, edb = N.batch_norm_eval_backward(dy, x, rm, rv, gamma, 1e-5, (0, 2, 3))
            x2 = _f32(rng, 4, 7, 10)
            ly, lm, li = N.layer_norm_forward(x2, 2, _f32(rng, 7, 10), _f32(rng, 7, 10), 1e-5)
            ldx, ldg, ldb = N.layer_norm_backward(_f32(rng, *x2.shape), x2, lm, li, _f32(rng, 7, 10), 2)
            return dict(y=y, mean=mean, invstd=invstd, var=var, rm=rm, rv=rv, dx=dx, dgamma=dgamma, dbeta=dbeta,
                        ye=ye, edx=edx, edg=edg, edb=edb, ly=ly, lm=lm, li=li, ldx=ldx, ldg=ldg, ldb=ldb)
        return run

    def activations():
        rng = _rng("activation")
        x = _f32(rng, 5, 7, 9) * 3
        x.flat[::17] = 0.0
        dy = _f32(rng, *x.shape)
        out = {}
        for name, fwd, bwd in (
            ("relu", A.relu, lambda y: A.relu_backward(dy, y)),
            ("leaky", lambda v: A.leaky_relu(v, 0.2), lambda y: A.leaky_relu_backward(dy, x, 0.2)),
            ("elu", lambda v: A.elu(v, 1.3), lambda y: A.elu_backward(dy, x, y, 1.3)),
            ("sigmoid", A.sigmoid, lambda y: A.sigmoid_backward(dy, y)),
            ("tanh", A.tanh, lambda y: A.tanh_backward(dy, y)),
            ("gelu", A.gelu, lambda y: A.gelu_backward(dy, x)),
            ("gelu_tanh", lambda v: A.gelu(v, "tanh"), lambda y: A.gelu_backward(dy, x, "tanh")),
        ):
            y = fwd(x)
            out[f"{name}_y"], out[f"{name}_dx"] = y, bwd(y)
        out["erf"] = A.erf(x)
        for axis in (-1, 1):
            y = S.softmax(x, axis)
            out[f"softmax{axis}_y"], out[f"softmax{axis}_dx"] = y, S.softmax_backward(dy, y, axis)
            ly = S.log_softmax(x, axis)
            out[f"log_softmax{axis}_y"], out[f"log_softmax{axis}_dx"] = ly, S.log_softmax_backward(dy, ly, axis)
        return out

    for layout in ("nchw", "channel_major"):
        yield f"pool/{layout}", pools(layout)
        yield f"norm/{layout}", norms(layout)
    yield "activation", activations


# ------------------------------------------------------------------------------------------------------------
# model cases


def _model_cases() -> Iterator[tuple[str, Callable[[], dict]]]:
    import numcnn
    from numcnn import models, optim
    from numcnn.nn import functional as F

    def batch(name, n=6):
        rng = _rng(name)
        return (numcnn.tensor(_f32(rng, n, 1, 28, 28), requires_grad=True),
                numcnn.tensor(rng.integers(0, 10, n)))

    def forward_backward(name):
        def run():
            numcnn.manual_seed(0)
            model = models.get(name)
            x, y = batch(name)
            out = model(x)
            F.cross_entropy(out, y).backward()
            res = {"out": out.numpy(), "dx": x.grad.numpy()}
            res.update({f"grad.{k}": p.grad.numpy() for k, p in model.named_parameters()})
            res.update({f"buffer.{k}": b.numpy() for k, b in model.named_buffers()
                        if np.asarray(b.numpy()).dtype.kind == "f"})
            model.eval()
            with numcnn.no_grad():
                res["eval_out"] = model(x).numpy()
            return res
        return run

    def adam_steps(name):
        def run():
            numcnn.manual_seed(0)
            model = models.get(name)
            opt = optim.Adam(model.parameters(), lr=1e-3)
            for step in range(2):
                x, y = batch(f"{name}/step{step}", 8)
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
            return {f"param.{k}": p.numpy() for k, p in model.named_parameters()}
        return run

    for name in models.names():
        yield f"model/{name}", forward_backward(name)
    for name in ("convnet", "lenet5", "resnet"):
        yield f"adam2/{name}", adam_steps(name)


def cases() -> Iterator[tuple[str, Callable[[], dict]]]:
    yield from _conv_cases()
    yield from _other_kernel_cases()
    yield from _model_cases()


# ------------------------------------------------------------------------------------------------------------


def _settings(threads: int):
    """``threads`` kernel threads and the small budget inside the block; everything restored afterwards."""
    from numcnn.kernels.runtime import runtime

    return runtime.scoped(threads=threads, memory_budget=BUDGET, backend="numpy")  # pinned to the NumPy kernels


def _blas() -> dict:
    import threadpoolctl

    info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    return {k: info[0].get(k) for k in ("internal_api", "version", "architecture")} if info else {}


def _flatten(name: str, result: dict) -> dict[str, np.ndarray]:
    return {f"{name}::{k}": np.asarray(v) for k, v in result.items()}


def _digest(a: np.ndarray) -> str:
    import hashlib

    a = np.ascontiguousarray(a)
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def _sample(a: np.ndarray) -> np.ndarray:
    flat = np.ascontiguousarray(a).reshape(-1)
    return flat[np.linspace(0, flat.size - 1, min(SAMPLE, flat.size)).astype(np.int64)] if flat.size else flat


def record() -> None:
    import subprocess

    digests: dict[str, str] = {}
    samples: dict[str, np.ndarray] = {}
    for name, fn in cases():
        with _settings(1):
            one = _flatten(name, fn())
        with _settings(2):
            two = _flatten(name, fn())
        for k in one:
            assert _digest(one[k]) == _digest(two[k]), f"{k}: 1 and 2 threads differ"
            digests[k], samples[k] = _digest(one[k]), _sample(one[k])
    np.savez_compressed(SAMPLES, **samples)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    GOLDEN.write_text(json.dumps({"commit": commit, "numpy": np.__version__, "blas": _blas(), "digests": digests},
                                 indent=0) + "\n")
    print(f"recorded {len(digests)} arrays at {commit[:10]}")


_CASES = list(cases()) if GOLDEN.exists() else []


@pytest.fixture(scope="module")
def golden():
    meta = json.loads(GOLDEN.read_text())
    with np.load(SAMPLES) as data:
        yield meta, {k: data[k] for k in data.files}


def test_every_recorded_case_is_still_computed(golden):
    meta, samples = golden
    assert {name for name, _ in _CASES} == {k.split("::")[0] for k in meta["digests"]}
    assert sorted(samples) == sorted(meta["digests"])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name,fn", _CASES, ids=[name for name, _ in _CASES])
def test_same_bits_as_before_the_reorganisation(golden, name, fn, threads):
    meta, samples = golden
    with _settings(threads):
        got = _flatten(name, fn())
    expected = {k: v for k, v in meta["digests"].items() if k.split("::")[0] == name}
    assert sorted(got) == sorted(expected)
    exact = _blas() == meta["blas"]
    for key, digest in expected.items():
        if exact:
            assert _digest(got[key]) == digest, f"{key}: bits changed"
        else:  # another BLAS build or CPU kernel: GEMMs may round differently
            assert got[key].dtype == samples[key].dtype, key
            np.testing.assert_allclose(_sample(got[key]), samples[key], rtol=2e-4, atol=2e-5, err_msg=key)


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    else:
        sys.exit("usage: python tests/golden/test_golden.py --record")
