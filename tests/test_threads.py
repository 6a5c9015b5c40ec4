"""numcnn.set_num_threads changes how work is shared out, never the numbers: whole training steps give the same bits
with 1 and 2 threads (kernels cut work by shapes and the memory budget only, see numcnn/kernels/parallel.py)."""

import numpy as np
import pytest

import numcnn
from numcnn import models, optim
from numcnn.kernels.runtime import runtime
from numcnn.nn import functional as F


def _train(name: str, threads: int) -> list[np.ndarray]:
    numcnn.set_num_threads(threads)
    numcnn.manual_seed(0)
    model = models.get(name)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = numcnn.tensor(rng.standard_normal((12, 1, 28, 28)).astype(np.float32))
        y = numcnn.tensor(rng.integers(0, 10, 12))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return [p.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("name", ["convnet", "lenet5"])
def test_training_steps_give_the_same_bits_with_one_and_two_threads(name):
    with runtime.scoped(memory_budget=64 << 10):  # many chunks, so two threads really share the work
        one, two = _train(name, 1), _train(name, 2)
    assert len(one) == len(two)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(one[0], _fresh_first_weight(name))  # the steps did change the weights


def _fresh_first_weight(name: str) -> np.ndarray:
    numcnn.manual_seed(0)
    return next(iter(models.get(name).parameters())).numpy()
