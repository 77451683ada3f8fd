"""The integer hyper-synthesis h_s, as it trains: z_hat -> (scale index, mean) of y.

Balle, Johnston, Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019. In training the network runs in float with its weights and activations
rounded on the integer grid (straight-through gradients), so the model learns with the
quantization in the loop. `export` gives the integers that coding evaluates exactly
(`exact.h_s`), checked so that no partial sum can leave exact float64.

    z_hat (N) --deconv5/2--> QReLU --deconv5/2--> QReLU --conv3--> [index (M), mean (M)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import exact
from .exact import ACT_MAX, ACT_SCALE, EXACT_LIMIT, FRACTION_BITS, MEAN_LIMIT, MEAN_SCALE, Z_LIMIT
from .layers import round_ste


def means(mean_int: np.ndarray) -> torch.Tensor:
    """Integer means -> the float32 means they stand for. Exact, and so is mean + symbol:
    MEAN_SCALE is a power of two and the values stay far inside float32's 24-bit mantissa."""
    return torch.from_numpy(exact.means(mean_int))


class QuantizedConv(nn.Module):
    """A (transposed) convolution whose weights live on the integer grid of its scales."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, transposed: bool,
                 in_scale: float, out_scale: torch.Tensor):
        super().__init__()
        self.stride, self.transposed = stride, transposed
        self.padding = kernel // 2
        shape = (in_ch, out_ch, kernel, kernel) if transposed else (out_ch, in_ch, kernel, kernel)
        fan_in = in_ch * kernel * kernel / (stride * stride if transposed else 1)
        self.weight = nn.Parameter(torch.randn(shape) / fan_in**0.5)
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.in_scale = in_scale
        self.register_buffer("out_scale", out_scale.float(), persistent=False)

    def weight_multiplier(self) -> torch.Tensor:
        m = self.in_scale / self.out_scale * 2.0**FRACTION_BITS
        return m.view(1, -1, 1, 1) if self.transposed else m.view(-1, 1, 1, 1)

    def _conv(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.stride - 1)
        return F.conv2d(x, w, b, self.stride, self.padding)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Float emulation: input in real units, output in integer units of out_scale."""
        m = self.weight_multiplier()
        w = round_ste(self.weight * m) / m
        bm = 2.0**FRACTION_BITS / self.out_scale
        b = round_ste(self.bias * bm) / bm
        return self._conv(a, w, b) / self.out_scale.view(1, -1, 1, 1)

    def export(self) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            w = torch.round(self.weight * self.weight_multiplier()).long()
            b = torch.round(self.bias * 2.0**FRACTION_BITS / self.out_scale).long()
        return w, b

    def load_integers(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """The inverse of `export`: the float values the integers stand for."""
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(weight).float() / self.weight_multiplier())
            self.bias.copy_(torch.from_numpy(bias).float() * self.out_scale / 2.0**FRACTION_BITS)


@dataclass(frozen=True)
class HyperParams:
    """What h_s gives for each latent of y: an integer table index and an integer mean."""

    index: torch.Tensor  # int64 (B, M, h, w), 0..levels-1
    mean_int: torch.Tensor  # int64 (B, M, h, w), mean = mean_int * MEAN_SCALE


class IntegerHyperSynthesis(nn.Module):
    def __init__(self, N: int, M: int, levels: int):
        super().__init__()
        hidden = torch.full((N,), ACT_SCALE)
        wide = torch.full((N * 3 // 2,), ACT_SCALE)
        out = torch.cat([torch.ones(M), torch.full((M,), MEAN_SCALE)])
        self.M, self.levels = M, levels
        self.layers = nn.ModuleList([
            QuantizedConv(N, N, 5, 2, True, 1.0, hidden),
            QuantizedConv(N, N * 3 // 2, 5, 2, True, ACT_SCALE, wide),
            QuantizedConv(N * 3 // 2, 2 * M, 3, 1, False, ACT_SCALE, out),
        ])
        with torch.no_grad():  # start every scale in the middle of the table
            self.layers[-1].bias[:M] = levels / 2

    def forward(self, z_hat: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: (continuous index on the integer grid, mean in real units)."""
        with torch.autocast(z_hat.device.type, enabled=False):
            a = z_hat.float().clamp(-Z_LIMIT, Z_LIMIT)
            for layer in self.layers[:-1]:
                a = round_ste(layer(a)).clamp(0, ACT_MAX) * ACT_SCALE
            v = round_ste(self.layers[-1](a))[..., : size[0], : size[1]]
            index = v[:, : self.M].clamp(0, self.levels - 1)
            mean = v[:, self.M :].clamp(-MEAN_LIMIT, MEAN_LIMIT) * MEAN_SCALE
        return index, mean

    def export(self) -> list[dict[str, np.ndarray]]:
        """Integer weights and biases, checked so that `exact.h_s` never leaves exact float64."""
        layers, x_max = [], float(Z_LIMIT)
        for layer in self.layers:
            w, b = layer.export()
            per_out = w.abs().sum(dim=(0, 2, 3) if layer.transposed else (1, 2, 3))
            bound = float((per_out * x_max + b.abs()).max())
            if bound >= EXACT_LIMIT:
                raise ValueError(f"integer h_s layer may reach {bound:.3g}, beyond exact float64")
            layers.append({"weight": w.numpy().astype(np.int64), "bias": b.numpy().astype(np.int64)})
            x_max = float(ACT_MAX)
        return layers
