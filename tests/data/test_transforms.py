import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from numcnn.data import Compose, Lambda, Normalize, Pad, RandomCrop, RandomHorizontalFlip, ToTensor
from numcnn.data.transforms import is_batch_transform

torch = pytest.importorskip("torch")
F = torch.nn.functional


def images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- ToTensor ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 5, 4), (5, 4)])
def test_to_tensor_matches_torch(shape):
    x = images(shape)
    out = ToTensor()(x)
    expected = torch.from_numpy(x).float().div(255).numpy()
    if len(shape) == 2:
        expected = expected[None]
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= 0 and out.max() <= 1


def test_to_tensor_other_dtypes():
    f = np.linspace(0, 3, 12, dtype=np.float32).reshape(1, 3, 4)
    assert ToTensor()(f) is f
    d = np.linspace(0, 3, 12).reshape(3, 4)
    out = ToTensor()(d)
    assert out.dtype == np.float64 and out.shape == (1, 3, 4)
    i = np.array([[-300, 0], [7, 40000]], dtype=np.int32)
    np.testing.assert_array_equal(ToTensor()(i), np.array([[[-300, 0], [7, 40000]]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"ToTensor: expected an image .* got shape \(5,\)"):
        ToTensor()(np.zeros(5, np.uint8))


# -- Normalize --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, torch_dtype", [(np.float32, torch.float32), (np.float64, torch.float64)])
def test_normalize_matches_torch(dtype, torch_dtype):
    x = np.random.default_rng(1).random((4, 3, 5, 6)).astype(dtype)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = Normalize(mean, std)(x)
    m = torch.tensor(mean, dtype=torch_dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch_dtype).view(-1, 1, 1)
    expected = torch.from_numpy(x).sub(m).div(s).numpy()  # torchvision's normalize
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(Normalize(mean, std)(x[0]), expected[0])


def test_normalize_single_channel_forms():
    x = ToTensor()(images((6, 7), seed=2))  # (1, 6, 7)
    expected = (x - np.float32(0.1307)) / np.float32(0.3081)
    np.testing.assert_array_equal(Normalize(0.1307, 0.3081)(x), expected)
    np.testing.assert_array_equal(Normalize((0.1307,), (0.3081,))(x[0]), expected[0])
    assert Normalize(0.5, 0.5)(x).dtype == np.float32


def test_normalize_refusals():
    with pytest.raises(TypeError, match="Normalize: expected a float image .* got dtype uint8"):
        Normalize(0.5, 0.5)(images((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="mean has 2 values but the input has 3 channels"):
        Normalize((0.5, 0.5), 0.5)(np.zeros((3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="std must be non-zero"):
        Normalize(0.0, (1.0, 0.0))


# -- Pad --------------------------------------------------------------------------------------------

MODES = {"constant": "constant", "edge": "replicate", "reflect": "reflect"}


@pytest.mark.parametrize(
    "padding, torch_pad",  # torch's F.pad order: (left, right, top, bottom)
    [(2, (2, 2, 2, 2)), ((1, 3), (1, 1, 3, 3)), ((1, 2, 3, 0), (1, 3, 2, 0))],
)
@pytest.mark.parametrize("mode", list(MODES))
def test_pad_matches_torch(padding, torch_pad, mode):
    x = np.random.default_rng(3).standard_normal((2, 3, 5, 6)).astype(np.float32)
    kwargs = {"value": 7.0} if mode == "constant" else {}
    expected = F.pad(torch.from_numpy(x), torch_pad, mode=MODES[mode], **kwargs).numpy()
    out = Pad(padding, fill=7, padding_mode=mode)(x)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(Pad(padding, fill=7, padding_mode=mode)(x[0]), expected[0])
    np.testing.assert_array_equal(Pad(padding, fill=7, padding_mode=mode)(x[0, 0]), expected[0, 0])


def test_pad_symmetric_and_uint8_hand_computed():
    row = np.array([[1, 2, 3]], dtype=np.uint8)
    out = Pad((2, 0), padding_mode="symmetric")(row)
    np.testing.assert_array_equal(out, [[2, 1, 1, 2, 3, 3, 2]])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(Pad((1, 0), fill=9)(row), [[9, 1, 2, 3, 9]])
    with pytest.raises(ValueError, match="reflect padding"):
        Pad(3, padding_mode="reflect")(row)
    with pytest.raises(ValueError, match="padding must be a non-negative int"):
        Pad((1, 2, 3))


@given(
    n=st.integers(1, 3),
    h=st.integers(2, 6),
    w=st.integers(2, 6),
    pad=st.tuples(*[st.integers(0, 1)] * 4),
    mode=st.sampled_from(list(MODES)),
)
def test_pad_property_vs_torch(n, h, w, pad, mode):
    x = np.random.default_rng(h * w).standard_normal((n, 2, h, w)).astype(np.float32)
    left, top, right, bottom = pad
    expected = F.pad(torch.from_numpy(x), (left, right, top, bottom), mode=MODES[mode]).numpy()
    np.testing.assert_array_equal(Pad(pad, padding_mode=mode)(x), expected)


# -- RandomCrop -------------------------------------------------------------------------------------


def reference_crop(x, size, padding, seed):
    """The documented draw order, applied image by image to a torch-padded batch."""
    th, tw = size
    left, top, right, bottom = padding
    padded = F.pad(torch.from_numpy(x), (left, right, top, bottom)).numpy()
    n, _, H, W = padded.shape
    g = np.random.default_rng(seed)
    i = g.integers(0, H - th + 1, size=n)
    j = g.integers(0, W - tw + 1, size=n)
    return np.stack([padded[k, :, i[k] : i[k] + th, j[k] : j[k] + tw] for k in range(n)]), i, j


def test_random_crop_hand_computed():
    x = images((5, 2, 6, 7), seed=4)
    out = RandomCrop((3, 4), padding=(1, 2), generator=3)(x)
    expected, i, j = reference_crop(x, (3, 4), (1, 2, 1, 2), seed=3)
    assert out.shape == (5, 2, 3, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) > 1  # images moved independently


def test_random_crop_with_padding_keeps_size():
    x = images((16, 1, 28, 28), seed=5)
    out = RandomCrop(28, padding=4, generator=0)(x)
    assert out.shape == (16, 1, 28, 28)
    expected, i, j = reference_crop(x, (28, 28), (4, 4, 4, 4), seed=0)
    np.testing.assert_array_equal(out, expected)
    assert i.min() >= 0 and i.max() <= 8 and j.max() <= 8
    # Where the offset is (4, 4) the crop is the original image.
    same = (i == 4) & (j == 4)
    np.testing.assert_array_equal(out[same], x[same])


@given(n=st.integers(1, 4), h=st.integers(3, 8), w=st.integers(3, 8), seed=st.integers(0, 2**16))
def test_random_crop_property(n, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3, h, w)).astype(np.float32)
    size = (max(1, h - 2), w)
    out = RandomCrop(size, padding=1, generator=seed)(x)
    np.testing.assert_array_equal(out, reference_crop(x, size, (1, 1, 1, 1), seed)[0])


def test_random_crop_single_images_and_rng_priority():
    x = images((3, 9, 9), seed=6)
    one = RandomCrop(5, generator=7)(x)
    np.testing.assert_array_equal(one, reference_crop(x[None], (5, 5), (0, 0, 0, 0), seed=7)[0][0])
    two_d = RandomCrop(5, generator=7)(x[0])
    np.testing.assert_array_equal(two_d, one[0])
    # The call's rng is used when the transform has no generator; the transform's own one wins.
    np.testing.assert_array_equal(RandomCrop(5)(x, rng=np.random.default_rng(7)), one)
    np.testing.assert_array_equal(RandomCrop(5, generator=7)(x, rng=np.random.default_rng(1)), one)
    with pytest.raises(ValueError, match=r"crop size \(10, 10\) is larger than the \(padded\) image \(9, 9\)"):
        RandomCrop(10)(x)


# -- RandomHorizontalFlip ---------------------------------------------------------------------------


def test_random_flip_hand_computed():
    x = images((50, 2, 3, 4), seed=8)
    out = RandomHorizontalFlip(0.3, generator=9)(x)
    flip = np.random.default_rng(9).random(50) < 0.3
    assert 0 < flip.sum() < 50
    np.testing.assert_array_equal(out[flip], torch.from_numpy(x[flip]).flip(-1).numpy())
    np.testing.assert_array_equal(out[~flip], x[~flip])
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    single = RandomHorizontalFlip(1.0)(x[0, 0])
    np.testing.assert_array_equal(single, x[0, 0, :, ::-1])


# -- Compose ----------------------------------------------------------------------------------------


def test_compose_hand_computed_and_rng_passed_on():
    x = images((2, 1, 4, 4), seed=10)
    out = Compose([Pad(1), ToTensor(), Normalize(0.5, 0.25)])(x)
    padded = np.zeros((2, 1, 6, 6), np.float32)
    padded[:, :, 1:-1, 1:-1] = x
    np.testing.assert_array_equal(out, (padded / np.float32(255) - np.float32(0.5)) / np.float32(0.25))
    composed = Compose([RandomCrop(3), RandomHorizontalFlip()])(x, rng=np.random.default_rng(11))
    g = np.random.default_rng(11)
    np.testing.assert_array_equal(composed, RandomHorizontalFlip()(RandomCrop(3)(x, rng=g), rng=g))
    assert is_batch_transform(Compose([ToTensor(), Lambda(np.negative)]))
    assert not is_batch_transform(Compose([ToTensor(), np.negative]))
