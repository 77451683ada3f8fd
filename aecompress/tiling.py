"""Run g_a and g_s tile by tile, so memory stays bounded for images of any size.

Each tile is computed with a margin of latents around it that is wider than the transforms'
reach (an output of g_a depends on pixels within 30 px, a pixel of g_s on latents within 2
positions), then cropped to its core. Zero padding of the convolutions therefore only ever
happens at the true image border, as in whole-image processing: the tiled result equals the
untiled one up to float rounding, with no seams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRIDE = 16  # pixels per latent
TILE = 64  # latents per tile side (1024 px)
MARGIN = 4  # latents of context on each side of a tile (64 px)


@dataclass(frozen=True)
class Span:
    """A tile along one axis in latent units: core [start, end), computed over [lo, hi)."""

    start: int
    end: int
    lo: int
    hi: int


def spans(n: int, tile: int | None = None, margin: int | None = None) -> list[Span]:
    tile, margin = tile or TILE, MARGIN if margin is None else margin
    return [Span(s, min(s + tile, n), max(0, s - margin), min(n, s + tile + margin))
            for s in range(0, n, tile)]


def _pixels(rgb: np.ndarray, rows: Span, cols: Span) -> np.ndarray:
    """Pixels (h, w, 3) in [0, 1] for latents [lo, hi) of each axis; beyond the image edge,
    edge pixels repeat."""
    h, w = rgb.shape[:2]
    r = np.clip(np.arange(rows.lo * STRIDE, rows.hi * STRIDE), 0, h - 1)
    c = np.clip(np.arange(cols.lo * STRIDE, cols.hi * STRIDE), 0, w - 1)
    block = rgb[r[:, None], c[None, :]].astype(np.float32)
    block /= 255
    return block


def analysis(transforms, rgb: np.ndarray, noise: float = 0.0, t: float | None = None) -> np.ndarray:
    """uint8 (H, W, 3) -> latent y (M, ceil(H/16), ceil(W/16)), float32. `transforms`: the
    numpy or torch transforms (npnet.Transforms, model.TorchTransforms); `noise`: the level a
    denoising model removes (0: none); `t`: the quality axis a quality-conditioned model
    encodes for."""
    h, w = rgb.shape[:2]
    hy, wy = -(-h // STRIDE), -(-w // STRIDE)
    y = np.empty((transforms.config.M, hy, wy), np.float32)
    for rows in spans(hy):
        for cols in spans(wy):
            part = transforms.analysis(_pixels(rgb, rows, cols), noise, t)
            core = part[rows.start - rows.lo : rows.end - rows.lo, cols.start - cols.lo : cols.end - cols.lo]
            y[:, rows.start : rows.end, cols.start : cols.end] = core.transpose(2, 0, 1)
    return y


def synthesis(transforms, y_hat: np.ndarray, t: float, height: int, width: int) -> np.ndarray:
    """Gained y_hat' (M, hy, wy) -> uint8 pixels (height, width, 3)."""
    out = np.empty((height, width, 3), np.uint8)
    hy, wy = y_hat.shape[-2:]
    for rows in spans(hy):
        for cols in spans(wy):
            part = y_hat[:, rows.lo : rows.hi, cols.lo : cols.hi].transpose(1, 2, 0)
            x = transforms.synthesis(part, t)
            local, image = core_pixels(rows, cols, height, width)
            core = x[local]
            core *= 255
            out[image] = np.round(core, out=core)
    return out


def core_pixels(rows: Span, cols: Span, height: int, width: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The pixels of a tile's core inside the image: (rows, cols) slices within the tile's
    output, which starts at latent (lo, lo), and the same pixels' (rows, cols) in the image."""
    def axis(span: Span, size: int) -> tuple[slice, slice]:
        start, end = span.start * STRIDE, min(size, span.end * STRIDE)
        offset = (span.start - span.lo) * STRIDE
        return slice(offset, offset + end - start), slice(start, end)

    (r_local, r_image), (c_local, c_image) = axis(rows, height), axis(cols, width)
    return (r_local, c_local), (r_image, c_image)
