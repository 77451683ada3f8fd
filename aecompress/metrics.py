"""Image quality and rate-distortion summaries used by the benchmarks.

PSNR is on 8-bit RGB. MS-SSIM follows Wang, Simoncelli, Bovik, "Multi-scale structural
similarity for image quality assessment" (Asilomar 2003): an 11x11 Gaussian window
(sigma 1.5), valid filtering, 2x2 average pooling between 5 scales and the published
exponents; computed per RGB channel and averaged over channels, as CompressAI reports
"ms-ssim-rgb". BD-rate is Bjontegaard's average rate difference at equal PSNR, with the
log-rate interpolated by monotone cubic (pchip) curves over the PSNR range both curves cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .extras import require

if TYPE_CHECKING:
    from scipy.interpolate import PchipInterpolator


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW, _SIGMA = 11, 1.5
_K1, _K2 = 0.01, 0.03


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (inf when they are equal)."""
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _gaussian_filter(x: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, 'valid' borders (no invented pixels)."""
    r = np.arange(_WINDOW) - (_WINDOW - 1) / 2
    g = np.exp(-(r**2) / (2 * _SIGMA**2))
    g /= g.sum()
    ndimage = require("scipy.ndimage", "bench", "MS-SSIM")
    x = ndimage.correlate1d(x, g, axis=-1, mode="constant")
    x = ndimage.correlate1d(x, g, axis=-2, mode="constant")
    h = _WINDOW // 2
    return x[..., h:-h, h:-h]


def _ssim_terms(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean luminance*contrast*structure and mean contrast*structure, per channel (C, H, W)."""
    c1, c2 = (_K1 * 255) ** 2, (_K2 * 255) ** 2
    mx, my, xx, yy, xy = np.split(_gaussian_filter(np.concatenate([x, y, x * x, y * y, x * y])), 5)
    vx, vy, cov = xx - mx * mx, yy - my * my, xy - mx * my
    cs = (2 * cov + c2) / (vx + vy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).mean(axis=(1, 2)), cs.mean(axis=(1, 2))


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling (an odd last row or column is dropped)."""
    h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
    x = x[:, :h, :w]
    return (x[:, 0::2, 0::2] + x[:, 1::2, 0::2] + x[:, 0::2, 1::2] + x[:, 1::2, 1::2]) / 4


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 HxWx3 (or HxW) images, in [0, 1] for natural images."""
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    scales = len(MS_SSIM_WEIGHTS)
    smallest = (_WINDOW - 1) * 2 ** (scales - 1) + 1
    if min(a.shape[:2]) < smallest:
        raise ValueError(f"MS-SSIM needs images of at least {smallest} pixels a side, "
                         f"got {a.shape[1]}x{a.shape[0]}")
    x = np.atleast_3d(a).astype(np.float64).transpose(2, 0, 1)
    y = np.atleast_3d(b).astype(np.float64).transpose(2, 0, 1)
    factors = []
    for level in range(scales):
        ssim, cs = _ssim_terms(x, y)
        if level == scales - 1:
            factors.append(ssim)
        else:
            factors.append(cs)
            x, y = _halve(x), _halve(y)
    weights = np.array(MS_SSIM_WEIGHTS)[:, None]
    per_channel = np.prod(np.clip(np.stack(factors), 0, None) ** weights, axis=0)
    return float(per_channel.mean())


def _curve(bpp: Sequence[float], psnr_db: Sequence[float]) -> PchipInterpolator | None:
    """log(bpp) as a function of PSNR; None when fewer than two distinct usable points."""
    pts = sorted({(float(q), float(r)) for r, q in zip(bpp, psnr_db)
                  if r and r > 0 and np.isfinite(q) and np.isfinite(r)})
    q, r = [], []
    for qi, ri in pts:  # PSNR must rise strictly; keep the cheapest rate of equal PSNRs
        if q and qi <= q[-1]:
            continue
        q.append(qi)
        r.append(np.log(ri))
    return require("scipy.interpolate", "bench", "BD-rate").PchipInterpolator(q, r) if len(q) >= 2 else None


def bd_rate(anchor_bpp: Sequence[float], anchor_psnr: Sequence[float], test_bpp: Sequence[float],
            test_psnr: Sequence[float]) -> float | None:
    """Bjontegaard delta rate of test vs anchor in percent (negative: test needs fewer bits).

    None when the curves share no PSNR interval, which is more honest than extrapolating.
    """
    a, t = _curve(anchor_bpp, anchor_psnr), _curve(test_bpp, test_psnr)
    if a is None or t is None:
        return None
    lo, hi = max(a.x[0], t.x[0]), min(a.x[-1], t.x[-1])
    if hi <= lo:
        return None
    mean_log_ratio = (t.integrate(lo, hi) - a.integrate(lo, hi)) / (hi - lo)
    return float((np.exp(mean_log_ratio) - 1) * 100)


def bpp_at_psnr(bpp: Sequence[float], psnr_db: Sequence[float], target: float) -> float | None:
    """bpp a codec needs to reach `target` dB (pchip in log-rate), None outside its measured range."""
    c = _curve(bpp, psnr_db)
    if c is None or not c.x[0] <= target <= c.x[-1]:
        return None
    return float(np.exp(c(target)))
