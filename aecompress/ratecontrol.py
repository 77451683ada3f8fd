"""Rate control: the quality that meets a target size, bitrate or PSNR.

One run of g_a serves every trial (y does not depend on the quality, unless the model is
quality-conditioned: then each trial runs g_a for its quality); each trial applies the gain,
h_a and the integer h_s and sums the ideal code lengths under the integer tables,
which the real coder matches within a few bytes. Bisection on the continuous quality, then
a real encode; for size targets the quality steps down until the real file fits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from . import codec, metrics, zoo

STEPS = 14  # bisection steps: quality resolved to about 0.01


@dataclass(frozen=True)
class Target:
    kind: str  # "bpp", "size" (bytes) or "psnr" (dB)
    value: float


@dataclass(frozen=True)
class Result:
    data: bytes
    quality: float
    bpp: float
    psnr: float | None
    reached: bool  # False when the target lies outside what quality 1..100 can give


def _bisect(fits: Callable[[float], bool], want_highest: bool) -> float:
    """Highest quality that fits (size targets) or lowest that fits (quality targets)."""
    lo, hi = 1.0, 100.0
    for _ in range(STEPS):
        mid = round((lo + hi) / 2, 2)
        if fits(mid) == want_highest:
            lo = mid
        else:
            hi = mid
    return lo if want_highest else hi


def encode_to_target(image: Image.Image | np.ndarray, target: Target,
                     model: str | zoo.CodingModel | None = None, device: str = "cpu",
                     denoise: float | str | None = None) -> Result:
    if target.value <= 0:
        raise ValueError(f"--target-{target.kind} must be positive")
    if denoise and target.kind == "psnr":
        raise ValueError("--target-psnr measures against the noisy input; use it without --denoise")
    m = codec.load_model(model)
    source = codec.prepare(image)
    noise = codec.noise_level(m, source.rgb, denoise)
    h, w = source.rgb.shape[:2]
    once = None if m.config.quality_conditioned else codec.analysis(m, source.rgb, 100, device, noise)

    @functools.lru_cache(maxsize=1)  # the final encode reuses the last trial's g_a
    def analysis_at(q: float) -> np.ndarray:
        return codec.analysis(m, source.rgb, q, device, noise)

    def latents(q: float) -> codec.Latents:
        return codec.quantize(m, once if once is not None else analysis_at(q), q, device)

    def psnr_at(q: float) -> float:
        return metrics.psnr(source.rgb, codec.synthesize(m, latents(q), q, w, h, device))

    if target.kind == "psnr":
        q = _bisect(lambda q: psnr_at(q) >= target.value, want_highest=False)
        data = codec.write(m, source, latents(q), q)
        achieved = psnr_at(q)
        return Result(data, q, len(data) * 8 / source.pixels, achieved, achieved >= target.value)

    budget = target.value if target.kind == "size" else target.value * source.pixels / 8
    q = _bisect(lambda q: codec.estimated_bytes(m, latents(q)) <= budget, want_highest=True)
    data = codec.write(m, source, latents(q), q, noise)
    while len(data) > budget and q > 1:
        q = max(1.0, round(q - max(0.05, q * 0.005), 2))
        data = codec.write(m, source, latents(q), q, noise)
    return Result(data, q, len(data) * 8 / source.pixels, None, len(data) <= budget)
