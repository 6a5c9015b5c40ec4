"""The tutorials in docs/tutorials run in their CI mode and demonstrate what they claim.

Each test imports one tutorial by path, runs ``main(["--ci", "--out", tmp_path])`` in-process and checks the
numbers it returns against references: hand-written formulas against numcnn (naive equals im2col, hand
gradients equal autograd's), counts against closed forms, losses that fall, accuracies above a floor for the
small CI slice, and the figures it wrote.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = ROOT / "docs" / "tutorials"


def _has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module", autouse=True)
def fashion_mnist():
    from numcnn.data import FashionMNIST

    try:
        FashionMNIST(train=False)
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {e}")


def load_tutorial(number: int):
    (path,) = TUTORIALS.glob(f"{number:02d}_*.py")
    spec = importlib.util.spec_from_file_location(f"numcnn_tutorial_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.__doc__.startswith(f"Tutorial {number}: ")
    return module


def run_tutorial(number: int, tmp_path: Path, *extra: str) -> dict:
    results = load_tutorial(number).main(["--ci", "--out", str(tmp_path), *extra])
    if _has_matplotlib():
        assert results["figures"], "the tutorial wrote no figure"
        for figure in results["figures"]:
            figure = Path(figure)
            assert figure.parent == tmp_path and figure.suffix == ".png"
            assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 2000
    return results


def falls(losses, k: int = 10) -> bool:
    return float(np.mean(losses[-k:])) < float(np.mean(losses[:k]))


def test_index_lists_every_tutorial_in_order():
    files = sorted(p.name for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert [f"{i:02d}" for i in range(1, 11)] == [f[:2] for f in files]
    index = (ROOT / "docs" / "index.md").read_text()
    listed = re.findall(r"\]\(tutorials/(\d\d_\w+\.py)\)", index)
    assert listed == files
    assert "--ci" in index and "--out" in index


def test_01_convolution(tmp_path):
    r = run_tutorial(1, tmp_path)
    assert r["size_formula_mismatches"] == 0
    # LeNet-5's first layer: 6 filters * 28*28 outputs * 1 channel * 5*5 taps
    assert r["macs_formula"] == r["macs_counted"] == r["macs_summary"] == 6 * 28 * 28 * 25
    assert r["max_abs_loops_vs_im2col"] < 1e-5
    assert r["max_abs_naive_vs_im2col"] < 1e-5
    assert r["max_abs_hand_im2col_vs_numcnn"] == 0.0
    assert r["max_abs_gemm_vs_conv"] < 1e-5
    assert tuple(r["real_cols_shape"]) == (25, 24 * 24)
    times = r["times"]
    assert times["im2col"] < times["naive"] and times["im2col"] < times["seven_loops"]
    if times["torch"] is not None:
        assert r["max_abs_torch_vs_im2col"] < 1e-5


def test_02_pooling(tmp_path):
    r = run_tutorial(2, tmp_path)
    for key in ("max", "avg", "overlap"):
        assert r[key]["forward"] == 0.0
        assert r[key]["backward"] < 1e-15
        assert r[key]["grad_sum_gap"] < 1e-12  # pooling passes the whole upstream gradient on
    assert r["max_nonzero_grads"] == 4  # one arg-max per 2x2 window of the 4x4 input
    assert r["overlap_centre_grad"] == pytest.approx(0.1 + 0.2 + 0.3 + 0.4)
    assert r["random_max_abs_diff"] < 1e-6
    assert r["routed_pixels"] == 7 * 7


def test_03_activations(tmp_path):
    r = run_tutorial(3, tmp_path)
    for name in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh"):
        assert r[f"{name}_max_abs_error"] < 1e-12
    assert r["sigmoid_max_derivative"] == pytest.approx(0.25, abs=1e-12)
    s6 = 1 / (1 + np.exp(-6.0))
    assert r["sigmoid_derivative_at_6"] == pytest.approx(s6 * (1 - s6), rel=1e-12)
    assert r["Sigmoid_first_to_last_grad_ratio"] < 1e-2
    assert r["Tanh_first_to_last_grad_ratio"] > 0.1
    assert r["ReLU_first_to_last_grad_ratio"] > 0.1


def test_04_shallow_network(tmp_path):
    r = run_tutorial(4, tmp_path)
    assert r["forward_max_abs_diff"] < 1e-12
    assert r["loss_abs_diff"] < 1e-12
    assert set(r["grad_max_abs_diff"]) == {"W1", "b1", "W2", "b2"}
    for name, diff in r["grad_max_abs_diff"].items():
        assert diff < 1e-10, name  # float64: the issue asks for 1e-6, rounding gives ~1e-17
    assert r["param_max_abs_diff_after_training"] < 1e-10
    assert r["loss_max_abs_diff_during_training"] < 1e-10
    assert falls(r["losses"], 50)
    assert r["test_accuracy"] == r["test_accuracy_hand"]
    assert r["test_accuracy"] > 0.5  # ~0.71 after one epoch over 6,000 images; chance is 0.1


def test_05_gradient_check(tmp_path):
    r = run_tutorial(5, tmp_path)
    layers = ["Affine (Linear)", "ReLU", "Sigmoid", "Softmax-with-loss", "BatchNorm2d (train)", "Dropout (p=0.5)",
              "Conv2d (3x3, stride 2, pad 1)", "MaxPool2d (2x2)", "AvgPool2d (2x2)"]
    assert list(r["float64"]) == layers
    for name in layers:
        assert r["float64"][name]["max_abs_error"] < 1e-7, name
        assert r["float64"][name]["max_rel_error"] < 1e-5, name
        assert r["gradcheck"][name] is True, name
        # the lesson of part 2: float32 differences are orders of magnitude worse
        assert r["float32"][name]["max_abs_error"] > 10 * r["float64"][name]["max_abs_error"], name


def test_06_optimizers(tmp_path):
    r = run_tutorial(6, tmp_path)
    assert r["bowl_max_abs_diff"] < 1e-10
    for name, distance in r["bowl_final_distance"].items():
        assert distance < np.hypot(-7, 2) / 5, name  # every optimizer got well on its way to the minimum
    losses = r["optimizer_losses"]
    assert list(losses) == ["SGD", "Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW"]
    for name, curve in losses.items():
        assert np.mean(curve[-20:]) < curve[0], name
    assert np.mean(losses["Adam"][-20:]) < np.mean(losses["SGD"][-20:])
    assert r["l2_penalty_vs_weight_decay"] < 1e-6
    assert r["l1_grad_vs_sign"] < 1e-7
    runs = r["overfitting"]
    none = runs["none"]
    assert none["train_loss"] < 0.05 and none["train_accuracy"] == 1.0  # memorized the 300 images
    for name in ("L2 (lambda 0.03)", "L1 (lambda 1e-3)", "dropout (p 0.5)"):
        assert runs[name]["test_loss"] < none["test_loss"], name
        assert runs[name]["test_loss"] - runs[name]["train_loss"] < none["test_loss"] - none["train_loss"], name


def test_07_batch_norm(tmp_path):
    r = run_tutorial(7, tmp_path)
    assert r["train_output_max_abs_diff"] < 1e-5
    assert r["running_mean_max_abs_diff"] < 1e-6
    assert r["running_var_max_abs_diff"] < 1e-5
    assert r["eval_output_max_abs_diff"] < 1e-5
    assert r["batch_dependence_train"] > 1e-2
    assert r["batch_dependence_eval"] == 0.0
    assert abs(r["running_means"][-1] - 3) < 0.1 and abs(r["running_vars"][-1] - 4) < 0.3
    assert falls(r["lenet_bn_losses"])
    assert r["lenet_bn_final_loss"] < r["lenet_final_loss"]
    assert r["lenet_bn_test_accuracy"] > r["lenet_test_accuracy"]
    assert r["lenet_bn_test_accuracy"] > 0.6


def test_08_lenet5_convnet(tmp_path):
    r = run_tutorial(8, tmp_path)
    assert (r["n_train"], r["n_test"]) == (3000, 1000)
    assert r["xavier_worst_relative_gap"] < 0.15
    for key, floor in (("lenet5", 0.7), ("convnet", 0.65)):
        run = r[key]
        assert run["test_accuracy"] > floor, key
        assert run["accuracy_from_confusion"] == pytest.approx(run["test_accuracy"], abs=1e-12)
        assert run["confusion"].sum() == r["n_test"] and run["confusion"].shape == (10, 10)
    assert r["lenet5"]["train_loss"][-1] < r["lenet5"]["train_loss"][0]
    assert r["convnet"]["predict_accuracy"] == pytest.approx(r["convnet"]["test_accuracy"], abs=1e-12)


def test_09_modern_blocks(tmp_path):
    r = run_tutorial(9, tmp_path)
    assert r["conv1x1_vs_einsum"] < 1e-5 and r["conv1x1_vs_linear"] < 1e-5
    assert r["conv1x1_params"] == 64 * 16 + 16 and r["conv3x3_params"] == 64 * 16 * 9 + 16
    assert r["add_grad_gap"] == 0.0 and r["cat_grad_gap"] == 0.0
    assert r["inception_channels"] == 16 + 32 + 8 + 8
    assert r["plain_first_to_last"] < 1e-4
    assert r["residual_first_to_last"] > 0.1
    assert r["residual_identity_gap"] < 1e-12
    assert r["bottleneck_params"] == r["bottleneck_params_formula"] == 70_400
    assert r["basic_params"] == r["basic_params_formula"] == 1_180_672
    assert 10 * r["bottleneck_macs"] < r["basic_macs"]
    assert falls(r["resnet_losses"], 5)
    assert r["resnet_test_accuracy"] > 0.4  # ~0.69 after 40 steps on 2,000 images


def write_digits(folder: Path, n_train: int = 1000, n_test: int = 200, seed: int = 0) -> None:
    """Stand-in MNIST files, written as IDX like the real ones: class k is a bright block at place k on noise."""
    from numcnn.data import write_idx

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for image, k in zip(images, labels):
            r, c = 2 + 8 * (k // 4), 2 + 6 * (k % 4)
            image[r : r + 6, c : c + 5] = rng.integers(180, 256, (6, 5))
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def test_10_keras_style(tmp_path):
    write_digits(tmp_path / "mnist")
    r = run_tutorial(10, tmp_path, "--mnist-root", str(tmp_path / "mnist"))
    # conv 1*10*9 + 10, dense 1960*100 + 100, dense 100*10 + 10
    assert r["params"] == 100 + 196_100 + 1_010
    assert r["zoo_same_shapes"] is True
    f = r["fashion"]
    assert f["test_accuracy"] > 0.65
    assert f["predict_accuracy"] == pytest.approx(f["test_accuracy"], abs=1e-12)
    assert f["probability_row_sum_error"] < 1e-5
    assert f["reload_max_abs_diff"] == 0.0
    assert f["train_loss"][-1] < f["train_loss"][0]
    assert f["val_accuracy"][-1] > 0.6
    assert (tmp_path / "10_fashion_mnist.safetensors").exists()
    # Part 4 ran on the digits written above, learnable only if every image kept its own label.
    m = r["mnist"]
    assert m["test_accuracy"] > 0.8
    assert m["predict_accuracy"] == pytest.approx(m["test_accuracy"], abs=1e-12)
    assert m["reload_max_abs_diff"] == 0.0
    assert (tmp_path / "10_mnist.safetensors").exists()


def test_10_keras_style_without_mnist_skips_the_digits_and_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    """No MNIST in --mnist-root, $NUMCNN_DATA or the user cache: part 4 is skipped, pointing at --download-mnist."""
    monkeypatch.delenv("NUMCNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    module = load_tutorial(10)
    assert module.digits(str(tmp_path / "nothing"), False, 3000, 2, tmp_path) is None
    out = capsys.readouterr().out
    assert f"--mnist-root {tmp_path / 'nothing'}, $NUMCNN_DATA or {tmp_path / 'cache' / 'numcnn' / 'mnist'}" in out
    assert "run with --download-mnist" in out
    assert not list(tmp_path.glob("*.safetensors"))
