"""make_grid and save_image: hand-computed grids from torchvision's rules (layout, padding, normalisation)."""

import numpy as np
import pytest
from PIL import Image

import numcnn
from numcnn.vision.utils import make_grid, save_image


def test_grid_layout_hand_computed():
    x = np.arange(1, 1 + 3 * 1 * 2 * 2, dtype=np.float32).reshape(3, 1, 2, 2)
    grid = make_grid(numcnn.tensor(x), nrow=2, padding=1, pad_value=0.5)
    # 3 images, 2 per row -> 2 rows; (2 + 1) * 2 + 1 = 7 pixels each way; one channel repeated to three.
    p = 0.5
    expected = np.array([
        [p, p, p, p, p, p, p],
        [p, 1, 2, p, 5, 6, p],
        [p, 3, 4, p, 7, 8, p],
        [p, p, p, p, p, p, p],
        [p, 9, 10, p, p, p, p],
        [p, 11, 12, p, p, p, p],
        [p, p, p, p, p, p, p],
    ], dtype=np.float32)
    assert isinstance(grid, numcnn.Tensor) and grid.shape == (3, 7, 7)
    for c in range(3):
        np.testing.assert_array_equal(grid.numpy()[c], expected)


def test_default_nrow_and_padding_shape():
    grid = make_grid(numcnn.zeros(10, 3, 4, 5))
    # nrow=8: 8 columns, 2 rows; padding 2: (4 + 2) * 2 + 2 = 14 high, (5 + 2) * 8 + 2 = 58 wide
    assert grid.shape == (3, 14, 58)
    assert make_grid([numcnn.ones(1, 4, 4)] * 3, padding=0).shape == (3, 4, 12)


def test_single_image_is_returned_without_padding():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    grid = make_grid(numcnn.tensor(x), padding=5)
    assert grid.shape == (3, 2, 3)
    np.testing.assert_array_equal(grid.numpy(), np.concatenate([x] * 3))
    assert make_grid(np.zeros((2, 3), np.float32)).shape == (3, 2, 3)


def test_normalize_whole_batch_each_image_and_value_range():
    x = np.array([[[[0.0, 2.0]]], [[[4.0, 8.0]]]], dtype=np.float32)  # (2, 1, 1, 2)
    whole = make_grid(numcnn.tensor(x), padding=0, normalize=True).numpy()[0]
    np.testing.assert_allclose(whole, [[0.0, 0.25, 0.5, 1.0]])  # (x - 0) / (8 - 0)
    each = make_grid(numcnn.tensor(x), padding=0, normalize=True, scale_each=True).numpy()[0]
    np.testing.assert_allclose(each, [[0.0, 1.0, 0.0, 1.0]])  # image 2: (x - 4) / 4
    ranged = make_grid(numcnn.tensor(x), padding=0, normalize=True, value_range=(1.0, 5.0)).numpy()[0]
    np.testing.assert_allclose(ranged, [[0.0, 0.25, 0.75, 1.0]])  # clamp to [1, 5], then (x - 1) / 4
    np.testing.assert_array_equal(x[1, 0, 0], [4.0, 8.0])  # the input is not modified
    flat = make_grid(numcnn.full((2, 1, 1, 1), 3.0), padding=0, normalize=True).numpy()[0]
    np.testing.assert_array_equal(flat, [[0.0, 0.0]])  # constant: divided by 1e-5 after subtracting itself
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        make_grid(numcnn.tensor(x), normalize=True, value_range=[0, 1])


def test_save_image_rounds_as_torchvision(tmp_path):
    values = np.array([0.0, 0.2, 0.5, 0.999, 1.2, -0.3], dtype=np.float32).reshape(1, 1, 2, 3)
    path = tmp_path / "grid.png"
    save_image(numcnn.tensor(values), path)
    saved = np.asarray(Image.open(path))
    # clamp(x * 255 + 0.5, 0, 255) truncated: 0, int(51.5) = 51, int(128.0) = 128, int(255.245) = 255, 255, 0
    assert saved.shape == (2, 3, 3)
    np.testing.assert_array_equal(saved[:, :, 0], [[0, 51, 128], [255, 255, 0]])
    save_image(numcnn.rand(4, 3, 5, 5), tmp_path / "four.png", nrow=2, padding=1, pad_value=1.0)
    four = np.asarray(Image.open(tmp_path / "four.png"))
    assert four.shape == (13, 13, 3) and (four[0] == 255).all() and (four[:, 6] == 255).all()
