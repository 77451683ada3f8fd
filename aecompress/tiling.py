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
import torch

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


def _pixels(rgb: np.ndarray, rows: Span, cols: Span) -> torch.Tensor:
    """Pixels for latents [lo, hi) of each axis; beyond the image edge, edge pixels repeat."""
    h, w = rgb.shape[:2]
    r = np.clip(np.arange(rows.lo * STRIDE, rows.hi * STRIDE), 0, h - 1)
    c = np.clip(np.arange(cols.lo * STRIDE, cols.hi * STRIDE), 0, w - 1)
    block = rgb[r[:, None], c[None, :]]
    return torch.from_numpy(block).permute(2, 0, 1)[None].float().div_(255)


def analysis(net, rgb: np.ndarray, device: torch.device, noise: float = 0.0,
             quality: float | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) -> latent y (1, M, ceil(H/16), ceil(W/16)), float32 on the CPU.
    `noise`: the level a denoising model removes (0: none); `quality`: the quality a
    quality-conditioned model encodes for (see HyperpriorModel.analysis)."""
    h, w = rgb.shape[:2]
    hy, wy = -(-h // STRIDE), -(-w // STRIDE)
    y = torch.empty(1, net.config.M, hy, wy)
    for rows in spans(hy):
        for cols in spans(wy):
            x = _pixels(rgb, rows, cols).to(device, memory_format=torch.channels_last)
            part = net.analysis(x, noise, quality)
            y[..., rows.start : rows.end, cols.start : cols.end] = part[
                ..., rows.start - rows.lo : rows.end - rows.lo, cols.start - cols.lo : cols.end - cols.lo
            ].cpu()
    return y


def synthesis(net, y_hat: torch.Tensor, quality: float, height: int, width: int,
              device: torch.device) -> np.ndarray:
    """Gained y_hat' (1, M, hy, wy) on the CPU -> uint8 pixels (height, width, 3)."""
    out = np.empty((height, width, 3), np.uint8)
    hy, wy = y_hat.shape[-2:]
    for rows in spans(hy):
        for cols in spans(wy):
            part = y_hat[..., rows.lo : rows.hi, cols.lo : cols.hi]
            x = net.synthesize(part.to(device, memory_format=torch.channels_last), quality)
            local, image = core_pixels(rows, cols, height, width)
            out[image] = x[0, :, local[0], local[1]].mul(255).round_().byte().permute(1, 2, 0).cpu().numpy()
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
