"""numcnn.vision.transforms against Pillow (torchvision's backend for PIL images), torch's own interpolate (what
torchvision's tensor path calls) and hand-computed values."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

import numcnn
from numcnn.vision import transforms as T
from numcnn.vision.transforms import functional as F


def rgb(h, w, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def arr(img):
    return np.asarray(img)


def test_to_tensor_pil_and_ndarray():
    img = rgb(3, 4)
    t = T.ToTensor()(img)
    assert isinstance(t, numcnn.Tensor) and t.shape == (3, 3, 4) and t.numpy().dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), torch.tensor(arr(img)).permute(2, 0, 1).float().div(255).numpy())
    gray = T.ToTensor()(img.convert("L"))
    assert gray.shape == (1, 3, 4)
    hw = np.arange(6, dtype=np.float64).reshape(2, 3)
    kept = T.ToTensor()(hw)  # non-uint8 arrays keep their dtype and values, as torchvision
    assert kept.numpy().dtype == np.float64 and kept.shape == (1, 2, 3)
    np.testing.assert_array_equal(T.PILToTensor()(img).numpy(), arr(img).transpose(2, 0, 1))
    back = T.ToPILImage()(t)
    np.testing.assert_array_equal(arr(back), (t.numpy().transpose(1, 2, 0) * np.float32(255)).astype(np.uint8))
    with pytest.raises(TypeError, match="PIL Image or ndarray"):
        T.ToTensor()([1, 2])


def test_normalize_equals_torch_formula():
    x = np.random.default_rng(1).random((3, 4, 5), dtype=np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = T.Normalize(mean, std)(numcnn.tensor(x))
    ref = torch.tensor(x).sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    with pytest.raises(TypeError, match="float tensor"):
        T.Normalize((0.5,), (0.5,))(numcnn.tensor(np.zeros((1, 2, 2), np.int64)))


@pytest.mark.parametrize("w, h, size, expected", [
    (40, 30, 15, (15, 20)),   # shorter side h: 15, w = int(15 * 40 / 30) = 20
    (30, 47, 10, (15, 10)),   # shorter side w: 10, h = int(10 * 47 / 30) = int(15.67) = 15
    (20, 20, (7, 9), (7, 9)),  # (h, w) as given
])
def test_resize_pil_is_pillow_bilinear(w, h, size, expected):
    img = rgb(h, w)
    out = T.Resize(size)(img)
    assert (out.height, out.width) == expected
    np.testing.assert_array_equal(arr(out), arr(img.resize(expected[::-1], Image.Resampling.BILINEAR)))
    near = T.Resize(size, interpolation=T.InterpolationMode.NEAREST)(img)
    np.testing.assert_array_equal(arr(near), arr(img.resize(expected[::-1], Image.Resampling.NEAREST)))


def test_resize_max_size_and_errors():
    assert T.Resize(10, max_size=12)(rgb(10, 30)).size == (12, 4)  # long side 30 -> capped at 12, short int(12*10/30)
    with pytest.raises(ValueError, match="max_size"):
        T.Resize(10, max_size=10)(rgb(10, 30))


def test_resize_tensor_close_to_torch_antialiased_interpolate():
    x = np.random.default_rng(2).random((3, 24, 36), dtype=np.float32)
    out = T.Resize(10)(numcnn.tensor(x))
    assert out.shape == (3, 10, 15)
    ref = torch.nn.functional.interpolate(torch.tensor(x)[None], size=(10, 15), mode="bilinear", align_corners=False,
                                          antialias=True)[0]
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)
    up = T.Resize((30, 40))(numcnn.tensor(x))
    ref_up = torch.nn.functional.interpolate(torch.tensor(x)[None], size=(30, 40), mode="bilinear",
                                             align_corners=False, antialias=True)[0]
    np.testing.assert_allclose(up.numpy(), ref_up.numpy(), atol=1e-5)


@pytest.mark.parametrize("h, w, size, top, left", [
    (5, 5, 2, 2, 2),    # round(1.5) = 2
    (7, 7, 2, 2, 2),    # round(2.5) = 2: Python's round, half to even, as torchvision
    (6, 9, (3, 4), 2, 2),  # round(1.5) = 2, round(2.5) = 2
    (4, 4, 4, 0, 0),
])
def test_center_crop_offsets(h, w, size, top, left):
    img = rgb(h, w)
    th, tw = (size, size) if isinstance(size, int) else size
    out = T.CenterCrop(size)(img)
    np.testing.assert_array_equal(arr(out), arr(img)[top:top + th, left:left + tw])
    t = T.CenterCrop(size)(numcnn.tensor(arr(img).transpose(2, 0, 1).copy()))
    np.testing.assert_array_equal(t.numpy(), arr(img).transpose(2, 0, 1)[:, top:top + th, left:left + tw])


def test_center_crop_larger_than_image_pads_with_zero():
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3)
    out = T.CenterCrop(4)(numcnn.tensor(x)).numpy()[0]
    # pad left (4-3)//2 = 0, top (4-2)//2 = 1, right (4-3+1)//2 = 1, bottom (4-2+1)//2 = 1
    expected = np.array([[0, 0, 0, 0], [1, 2, 3, 0], [4, 5, 6, 0], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(arr(T.CenterCrop(4)(Image.fromarray(x[0].astype(np.uint8), "L"))), expected)


def test_pad_modes():
    img = rgb(3, 4)
    np.testing.assert_array_equal(arr(T.Pad((1, 2), fill=7)(img)), arr(ImageOps.expand(img, border=(1, 2, 1, 2),
                                                                                        fill=(7, 7, 7))))
    x = torch.arange(12.0).reshape(1, 3, 4)
    for mode, torch_mode in [("reflect", "reflect"), ("edge", "replicate")]:
        ours = T.Pad((1, 2, 2, 1), padding_mode=mode)(numcnn.tensor(x.numpy()))
        ref = torch.nn.functional.pad(x[None], (1, 2, 2, 1), mode=torch_mode)[0]
        np.testing.assert_array_equal(ours.numpy(), ref.numpy())
    sym = T.Pad(1, padding_mode="symmetric")(numcnn.tensor(np.array([[[1.0, 2.0]]])))
    np.testing.assert_array_equal(sym.numpy()[0], [[1, 1, 2, 2]] * 3)


def test_grayscale():
    img = rgb(4, 5)
    np.testing.assert_array_equal(arr(T.Grayscale()(img)), arr(img.convert("L")))
    three = T.Grayscale(3)(img)
    assert three.mode == "RGB" and np.all(arr(three) == arr(img.convert("L"))[:, :, None])
    x = np.array([[[0.5]], [[0.25]], [[1.0]]], dtype=np.float32)
    out = T.Grayscale()(numcnn.tensor(x)).numpy()
    np.testing.assert_allclose(out, [[[0.2989 * 0.5 + 0.587 * 0.25 + 0.114 * 1.0]]], rtol=1e-6)
    u8 = T.Grayscale()(numcnn.tensor(np.array([[[200]], [[100]], [[50]]], dtype=np.uint8))).numpy()
    assert u8.dtype == np.uint8 and u8[0, 0, 0] == int(0.2989 * 200 + 0.587 * 100 + 0.114 * 50)  # truncated: 124


def test_random_rotation_is_pillow_rotate(global_seed):
    img = rgb(9, 9)
    out = T.RandomRotation((30, 30))(img)
    np.testing.assert_array_equal(arr(out), arr(img.rotate(30.0, Image.Resampling.NEAREST, fillcolor=(0, 0, 0))))
    bil = T.RandomRotation((-20, -20), interpolation=T.InterpolationMode.BILINEAR, expand=True, fill=5)(img)
    ref = img.rotate(-20.0, Image.Resampling.BILINEAR, expand=True, fillcolor=(5, 5, 5))
    np.testing.assert_array_equal(arr(bil), arr(ref))
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    np.testing.assert_array_equal(T.RandomRotation((90, 90))(numcnn.tensor(x)).numpy(), np.rot90(x, 1, axes=(1, 2)))
    numcnn.manual_seed(3)
    angle = np.random.default_rng(3).uniform(-10.0, 10.0)
    np.testing.assert_array_equal(arr(T.RandomRotation(10)(img)), arr(img.rotate(angle, fillcolor=(0, 0, 0))))
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomRotation(-1)


def test_color_jitter_pil_is_imageenhance():
    img = rgb(5, 6)
    np.testing.assert_array_equal(arr(T.ColorJitter(brightness=(0.6, 0.6))(img)),
                                  arr(ImageEnhance.Brightness(img).enhance(0.6)))
    np.testing.assert_array_equal(arr(T.ColorJitter(contrast=(1.7, 1.7))(img)),
                                  arr(ImageEnhance.Contrast(img).enhance(1.7)))
    np.testing.assert_array_equal(arr(T.ColorJitter(saturation=(0.3, 0.3))(img)),
                                  arr(ImageEnhance.Color(img).enhance(0.3)))
    red = Image.new("RGB", (1, 1), (255, 0, 0))
    assert arr(F.adjust_hue(red, 1 / 3))[0, 0].tolist() == [0, 255, 0] or arr(F.adjust_hue(red, 1 / 3))[0, 0, 1] > 240
    with pytest.raises(ValueError, match="brightness values"):
        T.ColorJitter(brightness=(2, 1))


def test_color_jitter_tensor_formulas():
    x = np.random.default_rng(4).random((3, 4, 4), dtype=np.float32)
    b = F.adjust_brightness(numcnn.tensor(x), 1.5).numpy()
    np.testing.assert_array_equal(b, np.clip(np.float32(1.5) * x + np.float32(-0.5) * 0, 0, 1))
    c = F.adjust_contrast(numcnn.tensor(x), 0.5).numpy()
    t = torch.tensor(x)
    gray = 0.2989 * t[0] + 0.587 * t[1] + 0.114 * t[2]
    ref = (0.5 * t + 0.5 * gray.mean()).clamp(0, 1)
    np.testing.assert_allclose(c, ref.numpy(), atol=1e-7)
    u8 = (x * 255).astype(np.uint8)
    bu = F.adjust_brightness(numcnn.tensor(u8), 1.3).numpy()
    np.testing.assert_array_equal(bu, (1.3 * torch.tensor(u8)).clamp(0, 255).to(torch.uint8).numpy())


def test_flips_and_random_crop(global_seed):
    img = rgb(4, 5)
    np.testing.assert_array_equal(arr(T.RandomHorizontalFlip(1.0)(img)), arr(img)[:, ::-1])
    np.testing.assert_array_equal(arr(T.RandomVerticalFlip(1.0)(img)), arr(img)[::-1])
    assert T.RandomHorizontalFlip(0.0)(img) is img
    numcnn.manual_seed(11)
    out = T.RandomCrop(3, padding=1)(img)
    g = np.random.default_rng(11)
    i, j = int(g.integers(0, 6 - 3 + 1)), int(g.integers(0, 7 - 3 + 1))
    padded = np.pad(arr(img), [(1, 1), (1, 1), (0, 0)])
    np.testing.assert_array_equal(arr(out), padded[i:i + 3, j:j + 3])
    assert T.RandomCrop((6, 7), pad_if_needed=True)(img).size == (7, 6)
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop(9)(img)


def test_compose_and_lambda():
    pipeline = T.Compose([T.Resize(8), T.CenterCrop(6), T.ToTensor(), T.Lambda(lambda t: t * 2)])
    out = pipeline(rgb(10, 12))
    assert out.shape == (3, 6, 6)
    ref = arr(rgb(10, 12).resize((9, 8), Image.Resampling.BILINEAR))[1:7, 2:8] / np.float32(255) * 2
    np.testing.assert_array_equal(out.numpy(), ref.transpose(2, 0, 1).astype(np.float32))
    with pytest.raises(TypeError, match="callable"):
        T.Lambda(3)


@pytest.fixture
def global_seed():
    yield
    numcnn.manual_seed(0)


def test_random_resized_crop_window_then_pillow_resize(global_seed):
    img = rgb(20, 30)
    numcnn.manual_seed(5)
    out = T.RandomResizedCrop(8)(img)
    g = np.random.default_rng(5)
    import math

    for _ in range(10):  # torchvision's draw, replayed by hand
        area = 600 * g.uniform(0.08, 1.0)
        aspect = math.exp(g.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < w <= 30 and 0 < h <= 20:
            i, j = int(g.integers(0, 20 - h + 1)), int(g.integers(0, 30 - w + 1))
            break
    ref = img.crop((j, i, j + w, i + h)).resize((8, 8), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(arr(out), arr(ref))
    # No window fits (scale > 1): the central crop at the ratio bound, 20 x round(20 * 4 / 3) = 27 of 30 wide.
    params = T.RandomResizedCrop(8, scale=(5.0, 5.0)).get_params(20, 30, np.random.default_rng(0))
    assert params == (0, 1, 20, 27)


def test_random_apply(global_seed):
    img = rgb(3, 3)
    assert T.RandomApply([T.RandomHorizontalFlip(1.0)], p=0.0)(img) is img
    np.testing.assert_array_equal(arr(T.RandomApply([T.RandomHorizontalFlip(1.0)], p=1.0)(img)), arr(img)[:, ::-1])
