import numpy as np
import pytest

from numcnn.data import DataLoader, ImageFolder, NpzDataset, TensorDataset, ToTensor


def test_tensor_dataset_items_and_length_check():
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    y = np.array([3, 1, 4, 1])
    ds = TensorDataset(x, y)
    assert len(ds) == 4
    item = ds[2]
    np.testing.assert_array_equal(item[0], x[2])
    assert item[1] == 4
    with pytest.raises(ValueError, match=r"same first dimension, got shapes \(4, 2, 3\), \(3,\)"):
        TensorDataset(x, y[:3])


def test_npz_dataset(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 9)
    np.savez(tmp_path / "d.npz", x=images, y=labels)
    ds = NpzDataset(tmp_path / "d.npz", images_key="x", labels_key="y")
    np.testing.assert_array_equal(ds.arrays[0], images)
    np.testing.assert_array_equal(ds[4][1], labels[4])
    batch = next(iter(DataLoader(ds, batch_size=9, as_tensors=False)))
    np.testing.assert_array_equal(batch[0], images[:, None] / np.float32(255))
    np.testing.assert_array_equal(batch[1], labels)
    with pytest.raises(KeyError, match=r"no array named \['images', 'labels'\]; the file has \['x', 'y'\]"):
        NpzDataset(tmp_path / "d.npz")
    only_images = NpzDataset(tmp_path / "d.npz", images_key="x", labels_key=None)
    assert len(only_images[0]) == 1
    np.testing.assert_array_equal(next(iter(DataLoader(only_images, batch_size=2, as_tensors=False)))[0], batch[0][:2])
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}, None], dtype=object), labels=np.arange(2))
    with pytest.raises(ValueError, match=r"obj\.npz\): Object arrays cannot be loaded when allow_pickle=False"):
        NpzDataset(tmp_path / "obj.npz")


def test_image_folder_gray_and_rgb(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    gray = {
        "cat": [rng.integers(0, 256, (5, 4), dtype=np.uint8) for _ in range(2)],
        "ant": [rng.integers(0, 256, (5, 4), dtype=np.uint8)],
    }
    for cls, arrays in gray.items():
        (tmp_path / "g" / cls).mkdir(parents=True)
        for k, a in enumerate(arrays):
            Image.fromarray(a).save(tmp_path / "g" / cls / f"{k}.png")
    (tmp_path / "g" / "cat" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path / "g", transform=ToTensor())
    assert ds.classes == ["ant", "cat"] and ds.class_to_idx == {"ant": 0, "cat": 1}
    assert len(ds) == 3 and ds.targets == [0, 1, 1]
    image, label = ds[1]
    assert image.shape == (1, 5, 4) and image.dtype == np.float32 and label == 1
    np.testing.assert_array_equal(image[0], gray["cat"][0] / np.float32(255))
    images, labels = next(iter(DataLoader(ImageFolder(tmp_path / "g"), batch_size=3, as_tensors=False)))
    np.testing.assert_array_equal(images[:, 0], np.stack([gray["ant"][0], *gray["cat"]]) / np.float32(255))
    np.testing.assert_array_equal(labels, [0, 1, 1])

    rgb = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)  # H, W, C
    (tmp_path / "c" / "only").mkdir(parents=True)
    Image.fromarray(rgb).save(tmp_path / "c" / "only" / "a.png")
    image, label = ImageFolder(tmp_path / "c")[0]
    assert image.dtype == np.uint8 and label == 0
    np.testing.assert_array_equal(image, rgb.transpose(2, 0, 1))
    forced = ImageFolder(tmp_path / "c", mode="L")[0][0]
    np.testing.assert_array_equal(forced[0], np.asarray(Image.fromarray(rgb).convert("L")))
    with pytest.raises(FileNotFoundError, match="has no class subfolders"):
        ImageFolder(tmp_path / "c" / "only")


def test_image_folder_without_pillow(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ImportError, match="ImageFolder reads images with Pillow, which is not installed"):
        ImageFolder(tmp_path)
