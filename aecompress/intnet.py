"""The integer hyper-synthesis h_s: z_hat -> (scale index, mean) for every latent of y.

Balle, Johnston, Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019. The entropy coder needs bit-identical tables on both sides, so what
picks a symbol's table must be computed exactly. Every layer here is

    acc   = conv(x_int, W_int) + b_int            (integers)
    x_out = floor(acc / 2**FRACTION_BITS + 1/2)   (clipped to [0, ACT_MAX] between layers)

In training the same network runs in float with its weights and activations rounded on
the integer grid (straight-through gradients), so the model learns with the quantization
in the loop. For coding, `run_exact` evaluates the exported integers in float64, where
sums of integers are exact while every partial sum stays below 2**53; `export` checks that
bound for the worst input. The result does not depend on the convolution algorithm, the
thread count or the CPU, because no step ever rounds.

    z_hat (N) --deconv5/2--> QReLU --deconv5/2--> QReLU --conv3--> [index (M), mean (M)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import round_ste

FRACTION_BITS = 16
ACT_SCALE = 1.0 / 256  # a hidden activation x_int stands for x_int * ACT_SCALE
ACT_MAX = 2**16 - 1
Z_LIMIT = 2**10  # z_hat is clipped to [-Z_LIMIT, Z_LIMIT] on its way into h_s
MEAN_SCALE = 1.0 / 16  # a mean mu_int stands for mu_int * MEAN_SCALE
MEAN_LIMIT = 2**20
EXACT_LIMIT = 2**52


def means(mean_int: np.ndarray) -> torch.Tensor:
    """Integer means -> the float32 means they stand for. Exact, and so is mean + symbol:
    MEAN_SCALE is a power of two and the values stay far inside float32's 24-bit mantissa."""
    return torch.from_numpy(mean_int.astype(np.float32)).mul_(MEAN_SCALE)


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
        """Integer weights and biases, checked so that `run_exact` never leaves exact float64."""
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


def _band(layers: list[dict[str, torch.Tensor]], z: torch.Tensor, width: int, out: np.ndarray,
          chunk: int) -> None:
    """h_s on a band of z rows; writes the rows of `out` (2M, rows, width) it computes exactly."""
    scale = 2.0**-FRACTION_BITS
    x = z[None]
    for layer in layers[:-1]:
        x = F.conv_transpose2d(x, layer["weight"], layer["bias"], 2, 2, 1)[..., : width + 2]
        x.mul_(scale).add_(0.5).floor_().clamp_(0, ACT_MAX)
    w_all, b_all = layers[-1]["weight"], layers[-1]["bias"]
    rows = out.shape[1]
    for c in range(0, w_all.shape[0], chunk):
        acc = F.conv2d(x, w_all[c : c + chunk], b_all[c : c + chunk], 1, 1)[0, :, :rows, :width]
        out[c : c + chunk] = acc.mul_(scale).add_(0.5).floor_().numpy()


def run_exact(layers: list[dict[str, np.ndarray]], z_hat: np.ndarray, size: tuple[int, int],
              levels: int, band: int = 16, chunk: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Integer h_s on int64 z_hat (N, h, w): returns (index, mean_int), each (M, *size), int32.

    Runs in bands of `band` z rows with 2 rows of context on each side (more than h_s reaches),
    and the last layer `chunk` channels at a time: memory stays bounded for any image, and the
    result is identical to one pass over the whole z, since every step is exact.
    """
    hy, wy = size
    layers = [{k: torch.from_numpy(v.astype(np.float64)) for k, v in layer.items()} for layer in layers]
    z = torch.from_numpy(np.clip(z_hat, -Z_LIMIT, Z_LIMIT).astype(np.float64))
    out = np.empty((layers[-1]["weight"].shape[0], hy, wy), np.int32)
    with torch.no_grad():
        for r0 in range(0, z.shape[1], band):
            r1 = min(z.shape[1], r0 + band)
            lo, hi = max(0, r0 - 2), min(z.shape[1], r1 + 2)
            y0, y1 = 4 * r0, min(hy, 4 * r1)
            if y0 >= y1:
                break
            part = np.empty((out.shape[0], 4 * (r0 - lo) + y1 - y0, wy), np.int32)
            _band(layers, z[:, lo:hi], wy, part, chunk)
            out[:, y0:y1] = part[:, 4 * (r0 - lo) :]
    M = out.shape[0] // 2
    np.clip(out[:M], 0, levels - 1, out=out[:M])
    np.clip(out[M:], -MEAN_LIMIT, MEAN_LIMIT, out=out[M:])
    return out[:M], out[M:]
