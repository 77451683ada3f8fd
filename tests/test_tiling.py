"""Tiled transforms equal whole-image processing: no seams, same symbols up to float rounding."""

import numpy as np

from aecompress import codec, tiling

from conftest import smooth_image


def psnr(a, b):
    return 10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def test_spans_cover_every_latent_once():
    for n in (1, 5, 64, 65, 200):
        covered = [i for s in tiling.spans(n, tile=7, margin=3) for i in range(s.start, s.end)]
        assert covered == list(range(n))
        assert all(s.lo <= s.start and s.end <= s.hi <= n for s in tiling.spans(n, tile=7, margin=3))


def test_tiled_coding_equals_whole_image(tiny, monkeypatch):
    img = smooth_image(200, 333, seed=7)
    whole = codec.encode(img, 70, model=tiny)
    whole_pixels = np.asarray(codec.decode(whole, model=tiny))
    monkeypatch.setattr(tiling, "TILE", 3)  # 48-px tiles: many seams inside a small image
    tiled = codec.encode(img, 70, model=tiny)
    _, _, a = codec.read(whole, model=tiny)
    _, _, b = codec.read(tiled, model=tiny)
    assert np.mean(a.y_symbols != b.y_symbols) < 1e-3
    tiled_pixels = np.asarray(codec.decode(whole, model=tiny))
    assert np.abs(tiled_pixels.astype(int) - whole_pixels).max() <= 1
    assert abs(psnr(img, tiled_pixels) - psnr(img, whole_pixels)) < 0.01
