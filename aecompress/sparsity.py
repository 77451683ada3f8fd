"""How sparse a file's integer code is (`aecompress info --stats`): no torch needed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import codec, zoo
from .tables import information_bits


@dataclass(frozen=True)
class Sparsity:
    """How sparse the integer code of one file is: the rate term drives most symbols to zero."""

    zero_share: float  # share of y symbols equal to 0
    nonzero_channels: int  # channels with at least one non-zero symbol
    channels_99: int  # fewest channels that hold 99% of the ideal y bits
    channels: int  # M
    y_bits: float  # ideal bits of the y symbols under the integer tables


def sparsity_of(data: bytes, model: zoo.CodingModel | str | None = None) -> Sparsity:
    """Sparsity statistics of one .aec file, from its decoded integer latents."""
    _, m, lat = codec.read(data, model)
    s = lat.y_symbols
    bits = np.array([information_bits(s[c], lat.index[c], m.y_tables) for c in range(s.shape[0])])
    order = np.sort(bits)[::-1]
    needed = int(np.searchsorted(np.cumsum(order), 0.99 * order.sum()) + 1) if order.sum() > 0 else 0
    return Sparsity(float((s == 0).mean()), int((s != 0).reshape(s.shape[0], -1).any(1).sum()),
                    min(needed, s.shape[0]), int(s.shape[0]), float(bits.sum()))
