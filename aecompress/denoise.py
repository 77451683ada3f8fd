"""How much noise `encode --denoise` removes: a given level, or one estimated from the image.

The denoising models' g_a takes the level as a condition (model.py); this module only picks it.
"""

from __future__ import annotations

import numpy as np

from . import zoo

# `denoise="auto"`: image texture reads as noise too, up to about this level on clean photos
# (the 95th percentile of scikit-image's estimate over our clean training photos), so only
# the noise above it is removed: level = sqrt(estimate**2 - floor**2).
AUTO_NOISE_FLOOR = 8.0
NORMAL_Q75 = 0.6744897501960817  # the standard normal distribution's 0.75 quantile
MAX_NOISE = 50.0  # the highest level the denoising models are trained for


def estimate_noise(rgb: np.ndarray) -> float:
    """Noise standard deviation of a uint8 RGB image, 0..255 scale, averaged over channels:
    the median absolute diagonal wavelet detail (Daubechies 2) over the normal distribution's
    0.75 quantile (Donoho and Johnstone, "Ideal spatial adaptation by wavelet shrinkage",
    Biometrika 1994), as scikit-image's estimate_sigma computes it."""
    import pywt

    sigmas = []
    for c in range(rgb.shape[-1]):
        detail = pywt.dwtn(rgb[..., c].astype(np.float64), "db2")["dd"]
        detail = np.abs(detail[detail != 0])
        sigmas.append(float(np.median(detail)) / NORMAL_Q75 if detail.size else 0.0)
    return float(np.mean(sigmas))


def noise_level(model: zoo.CodingModel, rgb: np.ndarray, denoise: float | str | None) -> float:
    """The level the encoder removes: 0 (off), a given level, or "auto" (estimated)."""
    if denoise is None or denoise == 0:
        return 0.0
    if not model.config.denoise:
        raise ValueError(f"model '{model.name}' has no denoising encoder")
    if denoise == "auto":
        level = max(0.0, estimate_noise(rgb) ** 2 - AUTO_NOISE_FLOOR**2) ** 0.5
    else:
        level = float(denoise)
        if not 0 <= level <= MAX_NOISE:
            raise ValueError(f"denoise level must be in 0..{MAX_NOISE:g} or 'auto', got {denoise}")
    return round(min(level, MAX_NOISE), 1)
