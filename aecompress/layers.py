"""Small building blocks: GDN/IGDN and the straight-through rounding used in training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class _LowerBound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # Below the bound, still let through gradients that would raise x back above it:
        # a parameter pushed to the bound is never stuck there.
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """max(x, bound) whose gradient does not vanish for parameters held at the bound."""
    return _LowerBound.apply(x, bound)


def conv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2)


def deconv(in_ch: int, out_ch: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """Transposed convolution that exactly doubles (stride 2) the spatial size."""
    return nn.ConvTranspose2d(
        in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1
    )


class GDN(nn.Module):
    """Generalized divisive normalization (Balle, Laparra, Simoncelli, ICLR 2016).

        y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)        (inverse=False)
        y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)        (inverse=True, IGDN)

    simplified=True swaps the root of squares for absolute values, y_i = x_i / (beta_i +
    sum_j gamma_ij |x_j|) (Johnston et al., "Computationally efficient neural image
    compression", 2019): cheaper, and reported to train as well.

    beta and gamma are kept non-negative by a lower bound that keeps passing the gradients
    which would lift them (so off-diagonal terms starting at zero can still grow). The
    normalization always runs in float32, also under bf16 autocast: its squares and square
    roots are what makes low-precision training unstable.
    """

    def __init__(self, channels: int, inverse: bool = False, simplified: bool = False):
        super().__init__()
        self.inverse, self.simplified = inverse, simplified
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            beta = lower_bound(self.beta.float(), 1e-6)
            gamma = lower_bound(self.gamma.float(), 0.0)
            x = x.permute(0, 2, 3, 1)  # channels last: the 1x1 mixing is one matrix product
            norm = F.linear(x.abs() if self.simplified else x * x, gamma, beta)
            if torch.is_grad_enabled():
                norm = norm if self.simplified else norm.sqrt()
                y = x * norm if self.inverse else x / norm
            else:  # inference (decoding): the same arithmetic in place, without two large temporaries
                norm = norm if self.simplified else norm.sqrt_()
                y = norm.mul_(x) if self.inverse else torch.div(x, norm, out=norm)
        return y.permute(0, 3, 1, 2).to(dtype)
