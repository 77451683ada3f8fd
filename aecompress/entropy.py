"""Entropy models: the factorized prior of z, the Gaussian conditional of y, and their
integer coding tables.

Training uses differentiable likelihoods. `update()`-style table building (below) turns the
trained densities into integer frequency counts that ship in the weights file; the coder
sees nothing else, so encoder and decoder use bit-identical tables on any machine.

A table covers symbols offset .. offset + len - 2; its last entry is the escape symbol for
anything outside that range (the value then follows in raw bits), so no symbol is clipped.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .tables import Tables

TABLE_PRECISION = 16  # every table's counts sum to 2**TABLE_PRECISION
LIKELIHOOD_FLOOR = 1e-9


def scale_table(levels: int, lo: float = 0.11, hi: float = 256.0) -> torch.Tensor:
    """Standard deviations of the y tables, log-spaced; h_s outputs an index into it."""
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels, dtype=torch.float64))


def scale_from_index(index: torch.Tensor, levels: int, lo: float = 0.11, hi: float = 256.0) -> torch.Tensor:
    step = (math.log(hi) - math.log(lo)) / (levels - 1)
    return torch.exp(math.log(lo) + index * step)


def gaussian_likelihood(residual: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """P(round(residual) = residual) under N(0, sigma) discretized on the integers."""
    r = residual.abs()
    c = 1.0 / (sigma * math.sqrt(2.0))
    upper = 0.5 * torch.erfc((r - 0.5) * c)
    lower = 0.5 * torch.erfc((r + 0.5) * c)
    return (upper - lower).clamp_min(LIKELIHOOD_FLOOR)


class FactorizedPrior(nn.Module):
    """A learned univariate density per channel (Balle et al. 2018, appendix 6.1).

    Its CDF is sigmoid(f(x)) with f a small monotone network: positive matrices
    (softplus) and x + a * tanh(x) nonlinearities with a >= -1.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(dims) - 1):
            init = math.log(math.expm1(1 / scale / dims[k + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: (C, 1, n) -> logits of the CDF, (C, 1, n)."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if k < len(self.factors):
                x = x + torch.tanh(self.factors[k]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, C, h, w) -> probability mass of the unit interval around each value."""
        with torch.autocast(z.device.type, enabled=False):
            B, C, h, w = z.shape
            v = z.float().permute(1, 0, 2, 3).reshape(C, 1, -1)
            lower = self.logits_cdf(v - 0.5)
            upper = self.logits_cdf(v + 0.5)
            sign = -torch.sign(lower + upper).detach()
            p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
            p = p.reshape(C, B, h, w).permute(1, 0, 2, 3)
        return p.clamp_min(LIKELIHOOD_FLOOR)


def quantize_pmf(pmf: np.ndarray, tail: float) -> np.ndarray:
    """Integer counts summing to 2**TABLE_PRECISION, every symbol and the escape at least 1."""
    total = 2**TABLE_PRECISION
    p = np.append(pmf, tail).astype(np.float64)
    counts = np.maximum(1, np.floor(p / p.sum() * total)).astype(np.int64)
    counts[np.argmax(counts)] += total - counts.sum()
    if counts.min() < 1:
        raise ValueError("table too long for its precision")
    return counts


def pack_tables(rows: list[tuple[int, np.ndarray]]) -> Tables:
    width = max(len(c) for _, c in rows)
    counts = np.zeros((len(rows), width), np.int32)
    for i, (_, c) in enumerate(rows):
        counts[i, : len(c)] = c
    return Tables(
        counts=counts,
        offset=np.array([o for o, _ in rows], np.int32),
        length=np.array([len(c) for _, c in rows], np.int32),
    )


def gaussian_tables(levels: int, tail_sigmas: float = 5.0) -> Tables:
    """One table per scale level, for residuals round(y - mean) centred on zero."""
    rows = []
    for sigma in scale_table(levels).tolist():
        radius = max(1, math.ceil(tail_sigmas * sigma))
        k = np.arange(-radius, radius + 1, dtype=np.float64)
        c = 1.0 / (sigma * math.sqrt(2.0))
        upper = 0.5 * np.vectorize(math.erfc)((np.abs(k) - 0.5) * c)
        lower = 0.5 * np.vectorize(math.erfc)((np.abs(k) + 0.5) * c)
        pmf = upper - lower
        tail = max(0.0, 1.0 - pmf.sum())
        rows.append((-radius, quantize_pmf(pmf, tail)))
    return pack_tables(rows)


@torch.no_grad()
def factorized_tables(prior: FactorizedPrior, channels: int, search: int = 1024,
                      tail: float = 1e-7) -> Tables:
    """One table per z channel, over the integers where the learned density has its mass."""
    grid = torch.arange(-search, search + 1, dtype=torch.float32)
    x = grid.view(1, 1, -1).expand(channels, 1, -1)
    cdf_lo = torch.sigmoid(prior.logits_cdf(x - 0.5))[:, 0].double().numpy()
    cdf_hi = torch.sigmoid(prior.logits_cdf(x + 0.5))[:, 0].double().numpy()
    rows = []
    for ch in range(channels):
        inside = np.nonzero((cdf_hi[ch] > tail) & (cdf_lo[ch] < 1 - tail))[0]
        first, last = (inside[0], inside[-1]) if len(inside) else (search, search)
        pmf = np.clip(cdf_hi[ch, first : last + 1] - cdf_lo[ch, first : last + 1], 0, None)
        escape = max(0.0, 1.0 - pmf.sum())
        rows.append((int(grid[first]), quantize_pmf(pmf, escape)))
    return pack_tables(rows)
