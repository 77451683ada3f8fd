"""Encoder-side search (`--effort`): latents fitted to one image by gradient descent.

g_a is amortized: one network maps every image to latents that are good on average. With the
decoder fixed, the latents of one particular image can be improved directly, lowering its
cost D + R / lambda (Campos et al., "Content adaptive optimization for neural image
compression", CVPR-W 2019; Yang et al., "Improving inference for neural image compression",
NeurIPS 2020). Only the encoder works harder: the file format and the decoder do not change.

z_hat stays as g_a and h_a chose it, so every step sees the exact integer means and scales the
decoder will use. With a context model, each step also runs the float context network (equal to
the decoder's integer one on the integer grid) on the latents being searched: the tables follow
the search, so a latent's cost counts what it saves its neighbours, and the rounded cost is the
one the file will have. The first STEPS_RELAXED share of the steps replaces rounding by uniform
noise (a smooth landscape); the rest round for real with straight-through gradients, and the
best latents under the true, rounded cost are kept: a search never ends worse than its start.
Large images are refined tile by tile (tiling.spans), each tile seeing its neighbours'
latents as the decoder will.
"""

from __future__ import annotations

import numpy as np
import torch

from . import intnet, tiling, zoo
from .entropy import gaussian_likelihood, scale_from_index
from .layers import round_ste
from .model import lambda_at, quality_to_t

STEPS = (0, 8, 16, 32, 64)  # search steps of --effort 0..4
LEARNING_RATE = 0.05  # Adam, in units of the quantization step; decays linearly to 0
STEPS_RELAXED = 0.6  # share of the steps with uniform noise in place of rounding
TILE = 32  # latents per tile side (512 px): bounded memory for the backward pass
SEED = 0  # the noise is seeded: the same input gives the same file


def steps_for(effort: int) -> int:
    if not 0 <= effort < len(STEPS):
        raise ValueError(f"effort must be in 0..{len(STEPS) - 1}, got {effort}")
    return STEPS[effort]


class _Tile:
    """One tile's problem: its core latents are free, the margin around them is fixed."""

    def __init__(self, net, y: torch.Tensor, index: torch.Tensor, mean: torch.Tensor,
                 target: torch.Tensor, rows: tiling.Span, cols: tiling.Span, inverse_gain: torch.Tensor):
        if (rows.lo + cols.lo) % 2:
            raise ValueError("a tile must start on an anchor of the checkerboard")
        self.net, self.inverse_gain = net, inverse_gain
        region = (..., slice(rows.lo, rows.hi), slice(cols.lo, cols.hi))
        self.core = (..., slice(rows.start - rows.lo, rows.end - rows.lo),
                     slice(cols.start - cols.lo, cols.end - cols.lo))
        self.y, self.index, self.mean = y[region], index[region], mean[region]
        local, image = tiling.core_pixels(rows, cols, *target.shape[-2:])
        self.pixels, self.target = (..., *local), target[(..., *image)]

    def tables(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (sigma, mean) the latents y of the region are coded with: the hyperprior's,
        corrected by the context model (if any) from these very latents, as the coder will."""
        index, mean = self.index, self.mean
        if self.net.config.context:
            index, mean = self.net.context(y, index, mean)
        return scale_from_index(index, self.net.config.levels), mean

    def cost(self, core: torch.Tensor, lam: float, noise: torch.Tensor | None = None) -> torch.Tensor:
        """lambda * 255^2 * MSE + bits per pixel of the tile, with core as its free latents:
        rounded (straight-through), or with `noise` in place of rounding."""
        y = self.y.clone()
        y[self.core] = core
        sigma, mean = self.tables(y)
        residual = round_ste(y - mean)
        if noise is not None:
            residual[self.core] = core - mean[self.core] + noise
        x_hat = self.net.g_s((residual + mean) * self.inverse_gain)[self.pixels]
        bits = -torch.log2(gaussian_likelihood(residual[self.core], sigma[self.core])).sum()
        mse = (x_hat - self.target).square().mean()
        return lam * 255**2 * mse + bits / self.target[0, 0].numel()


def _search(tile: _Tile, start: torch.Tensor, lam: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """Adam on the tile's core latents; returns the best found under the rounded cost."""
    y = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([y], lr=LEARNING_RATE)
    with torch.no_grad():
        best_cost, best = float(tile.cost(start, lam)), start.clone()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = LEARNING_RATE * (1 - step / steps)
        relaxed = step < STEPS_RELAXED * steps
        noise = torch.rand(y.shape, generator=generator).sub_(0.5).to(y.device) if relaxed else None
        cost = tile.cost(y, lam, noise)
        if not relaxed and (value := float(cost.detach())) < best_cost:  # exactly these rounded latents
            best_cost, best = value, y.detach().clone()
        optimizer.zero_grad(set_to_none=True)
        cost.backward()
        optimizer.step()
    with torch.no_grad():  # the last step's result was never scored
        last = float(tile.cost(y, lam))
    return y.detach() if last < best_cost else best


def refine(model: zoo.CodingModel, rgb: np.ndarray, y: np.ndarray, index: np.ndarray, mean_int: np.ndarray,
           quality: float, device: torch.device, steps: int) -> np.ndarray:
    """Gained latents y' (M, hy, wy) -> better latents y' (same shape) for the same z_hat. index
    and mean_int are the hyperprior's tables (before any context model)."""
    net = model.net.to(device)
    t = torch.tensor([quality_to_t(quality)])
    lam = float(lambda_at(model.config, t))
    inverse_gain = net.gains(t.to(device))[1].detach()
    mean = intnet.means(mean_int)[None].to(device)
    index = torch.from_numpy(index).float()[None].to(device)
    hy, wy = y.shape[-2:]
    target = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().div_(255).to(device)
    y = torch.from_numpy(y)[None].to(device).clone()
    generator = torch.Generator().manual_seed(SEED)
    for rows in tiling.spans(hy, TILE):
        for cols in tiling.spans(wy, TILE):
            tile = _Tile(net, y, index, mean, target, rows, cols, inverse_gain)
            core = (..., slice(rows.start, rows.end), slice(cols.start, cols.end))
            y[core] = _search(tile, y[core], lam, steps, generator)
    return y[0].cpu().numpy()
