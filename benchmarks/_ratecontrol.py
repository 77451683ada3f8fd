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
