"""npnet's layers: a framed output is the plain output inside zeros, and a layer that reads a
framed input (padded=True) computes what it computes from the plain input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aecompress import npnet

rng = np.random.default_rng(0)


def _gdn(channels: int) -> npnet.GDN:
    gamma = rng.uniform(0.0, 0.1, (channels, channels)).astype(np.float32)
    return npnet.GDN.of(np.ones(channels, np.float32), gamma, inverse=False, simplified=False)


@pytest.mark.parametrize("stride", [1, 2])
def test_a_convolution_matches_torch_framed_or_not(stride):
    weight = rng.normal(0, 0.1, (8, 6, 5, 5)).astype(np.float32)
    bias = rng.normal(0, 0.1, 8).astype(np.float32)
    x = rng.normal(0, 1, (13, 10, 6)).astype(np.float32)
    conv = npnet.Conv.of(weight, bias, stride)
    expected = F.conv2d(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(weight),
                        torch.from_numpy(bias), stride=stride, padding=2)[0].permute(1, 2, 0).numpy()
    plain = conv(x)
    np.testing.assert_allclose(plain, expected, atol=1e-5)
    framed = conv(np.pad(x, ((2, 2), (2, 2), (0, 0))), padded=True, frame=3)
    assert framed.shape == (plain.shape[0] + 6, plain.shape[1] + 6, 8)
    np.testing.assert_array_equal(framed[3:-3, 3:-3], plain)
    framed[3:-3, 3:-3] = 0
    assert not framed.any()


def test_a_transposed_convolution_matches_torch_framed_or_not_and_runs_then_per_pixel():
    weight = rng.normal(0, 0.1, (6, 12, 5, 5)).astype(np.float32)
    bias = rng.normal(0, 0.1, 12).astype(np.float32)
    x = rng.normal(0, 1, (7, 9, 6)).astype(np.float32)
    deconv, gdn = npnet.Deconv.of(weight, bias), _gdn(12)
    expected = F.conv_transpose2d(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(weight),
                                  torch.from_numpy(bias), stride=2, padding=2, output_padding=1)
    expected = gdn(expected[0].permute(1, 2, 0).numpy())
    plain = deconv(x, then=gdn.inplace)
    np.testing.assert_allclose(plain, expected, atol=1e-5)
    framed = deconv(np.pad(x, ((1, 1), (1, 1), (0, 0))), then=gdn.inplace, padded=True, frame=1)
    np.testing.assert_array_equal(framed[1:-1, 1:-1], plain)
    framed[1:-1, 1:-1] = 0
    assert not framed.any()
