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


def photo_400x300() -> np.ndarray:
    """A 400x300 (width x height) white photo with a dark 160x120 rectangle (4:3) off-centre."""
    img = np.full((300, 400), 255, dtype=np.uint8)
    img[40:160, 200:360] = 20
    return img


def bbox(image: np.ndarray, threshold: int = 127) -> tuple[int, int, float, float]:
    """(height, width, centre row, centre column) of the pixels above ``threshold``."""
    rows, cols = np.nonzero(image > threshold)
    return (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1,
            (rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)


def test_fashion_fit_keeps_the_aspect_and_centres():
    out, inverted = to_dataset_style(photo_400x300(), fit="fashion-mnist")
    assert inverted and out.shape == (28, 28) and out.dtype == np.uint8
    h, w, cy, cx = bbox(out)
    assert w == 28 and h == 21  # 160x120 -> longer side 28 -> 28x21: 4:3 kept
    assert abs(w / h - 4 / 3) < 0.05
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert out[0].max() == 0 and out[-1].max() == 0  # padded with the (inverted) white background
    # the stretched default squeezes 4:3 into a box of another aspect ratio
    sh, sw, _, _ = bbox(to_dataset_style(photo_400x300())[0])
    assert abs(sw / sh - 4 / 3) > 0.2


def test_mnist_fit_longer_side_20_and_centre_of_mass():
    out, inverted = to_dataset_style(photo_400x300(), fit="mnist")
    assert inverted and out.shape == (28, 28)
    h, w, _, _ = bbox(out)
    assert w == 20 and h == 15
    ys, xs = np.indices(out.shape)
    mass = out.astype(np.float64)
    assert abs((mass * ys).sum() / mass.sum() - 13.5) <= 1
    assert abs((mass * xs).sum() / mass.sum() - 13.5) <= 1
    # an L shape: its centre of mass, not its box, goes to the centre
    ell = np.full((300, 300), 255, dtype=np.uint8)
    ell[50:250, 50:90] = 0
    ell[210:250, 50:250] = 0
    out, _ = to_dataset_style(ell, fit="mnist")
    mass = out.astype(np.float64)
    assert abs((mass * ys).sum() / mass.sum() - 13.5) <= 1 and abs((mass * xs).sum() / mass.sum() - 13.5) <= 1
    assert bbox(out)[2] != 13.5 or bbox(out)[3] != 13.5


def test_fit_light_on_dark_blank_and_bad_mode(tmp_path):
    light = 255 - photo_400x300()  # light rectangle on black: not inverted
    Image.fromarray(light).save(tmp_path / "light.png")
    out, inverted = load_photo(tmp_path / "light.png", fit="fashion-mnist")
    assert not inverted and bbox(out)[:2] == (21, 28)
    blank, inverted = to_dataset_style(np.full((30, 40), 255, dtype=np.uint8), fit="mnist")
    assert inverted and not blank.any()
    with pytest.raises(ValueError, match="fit must be one of"):
        to_dataset_style(light, fit="squash")
