import numpy as np

from aecompress import codec, metrics, ratecontrol

from conftest import smooth_image


def test_size_target_lands_within_3_percent(tiny):
    img = smooth_image(256, 384)
    for q in (30, 70):
        target = len(codec.encode(img, q, model=tiny))
        result = ratecontrol.encode_to_target(img, ratecontrol.Target("size", target), tiny)
        assert result.reached and 0.97 * target <= len(result.data) <= target


def test_unreachable_size_is_reported(tiny):
    result = ratecontrol.encode_to_target(smooth_image(64, 64), ratecontrol.Target("size", 10), tiny)
    assert not result.reached and result.quality == 1


def test_psnr_target_is_reached_at_the_lowest_quality(tiny):
    img = smooth_image(128, 128)
    low = ratecontrol.encode_to_target(img, ratecontrol.Target("psnr", 1.0), tiny)
    assert low.reached and low.quality < 2
    out = np.asarray(codec.decode(low.data, model=tiny))
    assert abs(metrics.psnr(img, out) - low.psnr) < 1e-6
