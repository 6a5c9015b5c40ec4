"""The channel-major rule (kernels/layout.py): recognised exactly when the memory is (C, N, ...), and the matrix of
channel rows is a free view then, a copy otherwise, equal either way."""

import numpy as np

from numcnn.kernels import conv as K
from numcnn.kernels.layout import channel_major_empty, channel_rows, is_channel_major


def test_is_channel_major_recognises_a_conv_output_only():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    y = K.conv2d_forward(x, rng.standard_normal((4, 2, 3, 3)).astype(np.float32), algorithm="im2col")
    assert is_channel_major(y) and not is_channel_major(x)
    assert not is_channel_major(y[:1])  # one image: both layouts are the same memory
    assert not is_channel_major(np.ascontiguousarray(y))
    assert channel_major_empty((3, 4, 2, 2), np.float32).base.shape == (4, 3, 2, 2)
    # (N, C, L) as batch norm sees it: channel-major when its memory is (C, N, L)
    assert is_channel_major(np.zeros((4, 5, 7)).swapaxes(0, 1), axis=1)
    assert not is_channel_major(np.zeros((5, 4, 7)), axis=1)


def test_channel_rows_is_a_view_when_it_can_be():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4, 2, 5))
    rows, buf = channel_rows(a)
    assert buf is not None and rows.shape == (4, 30)
    np.testing.assert_array_equal(rows, a.transpose(1, 0, 2, 3).reshape(4, 30))
    b = np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    rows_b, buf_b = channel_rows(b)
    assert buf_b is None and np.shares_memory(rows_b, b)
    np.testing.assert_array_equal(rows_b, rows)
