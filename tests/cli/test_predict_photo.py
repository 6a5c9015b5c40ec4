"""numcnn predict --fit dataset: a 400x300 photo keeps its aspect ratio, and the prepared image is saved and named."""

import numpy as np
import pytest

from numcnn.data.photo import load_photo

Image = pytest.importorskip("PIL.Image")


def test_predict_saves_the_prepared_image(cli, trained_run, tmp_path):
    run, _ = trained_run
    photo = np.full((300, 400), 255, dtype=np.uint8)
    photo[40:160, 200:360] = 20  # a dark 4:3 rectangle on white
    Image.fromarray(photo).save(tmp_path / "photo.png")
    r = cli("predict", run, tmp_path / "photo.png", "--fit", "dataset", "--prepared-dir", tmp_path / "prep")
    assert r.rc == 0, r.err
    assert r.lines[0] == f"{tmp_path / 'photo.png'} (inverted: dark on a light background)"
    saved = tmp_path / "prep" / "photo.png.prepared.png"
    assert r.lines[-1] == f"  prepared image: {saved}"
    prepared = np.asarray(Image.open(saved))
    assert prepared.shape == (28, 28)
    np.testing.assert_array_equal(prepared, load_photo(tmp_path / "photo.png", fit="fashion-mnist")[0])
    rows, cols = np.nonzero(prepared > 127)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (21, 28)
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1 and abs((cols.min() + cols.max()) / 2 - 13.5) <= 1

    # without --prepared-dir nothing is saved and the output is the classes only
    r = cli("predict", run, tmp_path / "photo.png", "--fit", "dataset")
    assert r.rc == 0, r.err
    assert len(r.lines) == 4 and "prepared" not in r.out


def test_predict_help_documents_fit_and_prepared_dir(cli):
    out = cli("predict", "--help").out
    assert "--fit" in out and "--prepared-dir" in out and ".prepared.png" in out
