"""load_photo / to_dataset_style: gray, resized, light-on-dark, against Pillow's own resize and hand values."""

import numpy as np
import pytest

from numcnn.data.photo import border_mean, load_photo, to_dataset_style

Image = pytest.importorskip("PIL.Image")


def page(dark_on_light: bool) -> np.ndarray:
    img = np.zeros((40, 30), dtype=np.uint8)
    img[10:30, 8:22] = 200
    return 255 - img if dark_on_light else img


def reference(gray: np.ndarray, size=(28, 28)) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def test_border_mean_by_hand():
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    # border: 0 1 2 3 | 8 9 10 11 | 4 | 7 -> mean 55 / 10
    assert border_mean(img) == pytest.approx(5.5)
    with pytest.raises(ValueError, match="gray image"):
        border_mean(np.zeros((2, 2, 3)))


def test_light_on_dark_is_kept_and_dark_on_light_inverted(tmp_path):
    light = page(dark_on_light=False)
    Image.fromarray(light).save(tmp_path / "light.png")
    out, inverted = load_photo(tmp_path / "light.png")
    assert not inverted and out.dtype == np.uint8 and out.shape == (28, 28)
    np.testing.assert_array_equal(out, reference(light))

    dark = page(dark_on_light=True)
    Image.fromarray(np.stack([dark] * 3, axis=-1)).save(tmp_path / "dark.png")  # RGB file, converted to gray
    out, inverted = load_photo(tmp_path / "dark.png", size=(20, 16))
    assert inverted and out.shape == (20, 16)
    np.testing.assert_array_equal(out, 255 - reference(dark, (20, 16)))

    forced, inverted = to_dataset_style(light, invert=True)
    assert inverted
    np.testing.assert_array_equal(forced, 255 - reference(light))


def test_transparent_background_counts_as_white_paper(tmp_path):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)  # transparent black everywhere...
    rgba[8:20, 8:20] = (0, 0, 0, 255)  # ...but an opaque black square: a drawing on a transparent page
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "drawing.png")
    out, inverted = load_photo(tmp_path / "drawing.png")
    assert inverted
    want = np.zeros((28, 28), dtype=np.uint8)
    want[8:20, 8:20] = 255
    np.testing.assert_array_equal(out, want)


def test_jpeg_roundtrip_is_close(tmp_path):
    light = page(dark_on_light=False)
    Image.fromarray(light).save(tmp_path / "photo.jpg", quality=95)
    out, inverted = load_photo(tmp_path / "photo.jpg")
    assert not inverted
    assert np.abs(out.astype(int) - reference(light).astype(int)).mean() < 3


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"definitely not a PNG")
    with pytest.raises(ValueError, match="junk.png: cannot read this image"):
        load_photo(tmp_path / "junk.png")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_photo(tmp_path / "nope.jpg")
