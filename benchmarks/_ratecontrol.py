"""What the rate-control benchmarks share: another implementation of ratecontrol.py to measure
(--module), and the PSNR of a file as it decodes. aecompress is imported only when called, so a
script can set its BLAS threads first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np


def ratecontrol_module(path: Path | None):
    """aecompress.ratecontrol, or the module at `path` (an older one, from git show)."""
    if path is None:
        from aecompress import ratecontrol

        return ratecontrol
    spec = importlib.util.spec_from_file_location("aecompress._measured_ratecontrol", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decoded_psnr(rgb: np.ndarray, data: bytes, model) -> float:
    """PSNR of the file `data` against the pixels it was encoded from."""
    from aecompress import codec, metrics

    return metrics.psnr(rgb, np.asarray(codec.decode(data, model=model).convert("RGB")))


def counted_photos(files: list, count: int = 12, held_out: bool = False) -> list:
    """The training photos ratecontrol_counts.py measures: every (len / count)-th of the sorted
    list, or with `held_out` the ones midway between those."""
    every = len(files) // count
    return files[every // 2 if held_out else 0 :: every][:count]


def closer_fits(rgb: np.ndarray, result, kind: str, value: float, model) -> bool:
    """Whether the file 0.1 of a quality closer to the end that fits less (lower for a PSNR
    target, higher for a size or a bitrate) also meets the target: the search promises it does
    not, and near the top, where PSNR wavers by more than it rises over 0.1, it sometimes does.
    That file takes the result's latents where they reach it (ratecontrol.REACH), else its own
    step's, as a plain encode (the search may have tried it with another run's)."""
    from aecompress import codec

    q, psnr = result.quality, kind == "psnr"
    if (q <= 1.0) if psnr else (q >= 100.0):
        return False
    near = round(max(q - 0.1, 1.0) if psnr else min(q + 0.1, 100.0), 2)
    latents_for = getattr(result, "latents_for", None)  # an older ratecontrol.py gives none
    taking = latents_for if latents_for is not None and near >= latents_for else None
    data = codec.encode(rgb, near, model=model, latents_for=taking)
    if psnr:
        return decoded_psnr(rgb, data, model) >= value
    return len(data) <= (value if kind == "size" else value * rgb.shape[0] * rgb.shape[1] / 8)
