"""channel_stats: per-channel mean / std of a dataset, against NumPy over the whole array at once."""

import numpy as np
import pytest

from numcnn.data import Normalize, Subset, TensorDataset, ToTensor
from numcnn.data.stats import channel_stats


def test_uint8_images_count_as_scaled_to_unit_range():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (37, 9, 7), dtype=np.uint8)
    ds = TensorDataset(x, np.zeros(37, dtype=np.int64))
    mean, std = channel_stats(ds, batch_size=8)  # batches of 8 with a ragged last one
    ref = x.astype(np.float64) / 255
    assert mean == pytest.approx([ref.mean()], rel=1e-7) and std == pytest.approx([ref.std()], rel=1e-6)
    assert all(type(v) is float for v in mean + std)


def test_per_channel_over_a_subset():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((50, 3, 5, 5)) * [[[[1.0]], [[2.0]], [[0.5]]]] + [[[[0.0]], [[3.0]], [[-1.0]]]])
    x = x.astype(np.float32)
    idx = rng.permutation(50)[:20]
    mean, std = channel_stats(Subset(TensorDataset(x, np.zeros(50, dtype=np.int64)), idx), batch_size=7)
    ref = x[idx].astype(np.float64)
    assert mean == pytest.approx(ref.mean(axis=(0, 2, 3)), rel=1e-6, abs=1e-7)
    assert std == pytest.approx(ref.std(axis=(0, 2, 3)), rel=1e-6)
    # normalising with them gives mean 0 and std 1 per channel
    z = Normalize(mean, std)(ToTensor()(x[idx])).astype(np.float64)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, rtol=1e-5)


def test_empty_dataset_is_refused():
    with pytest.raises(ValueError, match="no images"):
        channel_stats(TensorDataset(np.zeros((0, 4, 4), dtype=np.uint8)))


@pytest.mark.parametrize("value", [0, 255, 37])
def test_constant_images_are_refused_naming_the_channel(value):
    """std 0 would make Normalize divide by zero (inf / NaN training): a one-line ValueError instead."""
    x = np.full((25, 6, 6), value, dtype=np.uint8)
    with pytest.raises(ValueError) as err:
        channel_stats(TensorDataset(x, np.zeros(25, dtype=np.int64)), batch_size=7)
    msg = str(err.value)
    assert msg.startswith("channel_stats: channel 0 has std 0: the images are constant")
    assert f"every pixel of the channel is {value / 255:g}" in msg and "\n" not in msg


def test_one_constant_channel_among_varying_ones_is_named():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 3, 4, 4)).astype(np.float32)
    x[:, 1] = -0.5
    with pytest.raises(ValueError, match=r"channel 1 has std 0: .*\(constant channels: 1\)$"):
        channel_stats(TensorDataset(x))
    x[:, 2] = 2.0
    with pytest.raises(ValueError, match=r"channel 1 has std 0: .*\(constant channels: 1, 2\)$"):
        channel_stats(TensorDataset(x))


def test_images_that_differ_in_one_pixel_are_accepted():
    x = np.zeros((4, 5, 5), dtype=np.uint8)
    x[3, 2, 2] = 1
    mean, std = channel_stats(TensorDataset(x))
    assert std[0] > 0 and mean[0] == pytest.approx(1 / 255 / 100)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_naming_the_channel(bad):
    x = np.ones((6, 2, 3, 3), dtype=np.float32)
    x[:, 0] = np.arange(9, dtype=np.float32).reshape(3, 3)
    x[4, 1, 0, 0] = bad
    with pytest.raises(ValueError, match=r"^channel_stats: channel 1 has mean .* the images hold NaN or infinite "
                                         r"pixels \(channels not finite: 1\)$"):
        channel_stats(TensorDataset(x), batch_size=4)
