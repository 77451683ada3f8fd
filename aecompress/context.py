"""The checkerboard context model: half of y is coded first and sharpens the tables of the rest.

He et al., "Checkerboard context model for efficient learned image compression", CVPR 2021.
The latents of y are split like the squares of a checkerboard. Anchors ((row + col) even) are
coded with the hyperprior's tables alone, as before. Once they are decoded, every other latent
sees its four anchor neighbours (all channels), and a small integer network corrects the
hyperprior's scale index and mean there:

    [anchor y_hat, 3x3 cross]  --conv-+
    [16 * index, mean] (1x1)   --conv-+--> QReLU --1x1--> QReLU --1x1--> [d_index (M), d_mean (M)]

    index' = clip(index + d_index),  mean' = mean + d_mean        (non-anchors only)

Both passes need only the one extra network run between them, so decoding stays parallel.
Like h_s (intnet.py) it is an integer network: it trains in float on the integer grid, and
for coding `run_exact` evaluates the exported integers in float64 where every sum is exact,
so the tables the decoder picks are bit-identical to the encoder's on any machine.

Its inputs are integers in units of MEAN_SCALE: an anchor's y_hat' = symbol + mean is
16 * symbol + mean_int, the index enters as 16 * index. The last layer starts at zero, so an
untrained context model leaves the hyperprior's tables exactly as they were.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .intnet import ACT_MAX, ACT_SCALE, EXACT_LIMIT, FRACTION_BITS, MEAN_LIMIT, MEAN_SCALE, QuantizedConv
from .layers import round_ste

INPUT_LIMIT = MEAN_LIMIT  # inputs (units of MEAN_SCALE) are clipped to +-this on the way in
CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])  # a non-anchor's anchor neighbours


def anchor_mask(h: int, w: int) -> np.ndarray:
    """True where a latent is an anchor: (row + col) even. Same for every channel."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


class CheckerboardContext(nn.Module):
    def __init__(self, M: int, hidden: int, levels: int):
        super().__init__()
        self.M, self.levels = M, levels
        act = torch.full((hidden,), ACT_SCALE)
        out = torch.cat([torch.ones(M), torch.full((M,), MEAN_SCALE)])
        self.anchors = QuantizedConv(M, hidden, 3, 1, False, MEAN_SCALE, act)
        self.hyper = QuantizedConv(2 * M, hidden, 1, 1, False, MEAN_SCALE, act)
        self.mid = QuantizedConv(hidden, hidden, 1, 1, False, ACT_SCALE, act)
        self.out = QuantizedConv(hidden, 2 * M, 1, 1, False, ACT_SCALE, out)
        self.anchors.register_buffer("mask", CROSS.expand(hidden, M, 3, 3).clone(), persistent=False)
        with torch.no_grad():
            self.hyper.bias.fill_(0.5)  # hidden units start awake
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, y_hat: torch.Tensor, index: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path. y_hat: gained y_hat' (anchors; non-anchors are ignored), index on the
        integer grid, mean in real units, all (B, M, h, w) -> corrected (index, mean) for every
        position; only the non-anchors' are meant to be used."""
        with torch.no_grad():  # weights off the cross stay zero, whatever the optimizer did
            self.anchors.weight.mul_(self.anchors.mask)
        with torch.autocast(y_hat.device.type, enabled=False):
            h, w = y_hat.shape[-2:]
            keep = torch.from_numpy(anchor_mask(h, w)).to(y_hat.device)
            limit = INPUT_LIMIT * MEAN_SCALE
            x = (y_hat.float() * keep).clamp(-limit, limit)
            hyper = torch.cat([index.float() * 16 * MEAN_SCALE, mean.float().clamp(-limit, limit)], 1)
            a = round_ste(self.anchors(x) + self.hyper(hyper)).clamp(0, ACT_MAX) * ACT_SCALE
            a = round_ste(self.mid(a)).clamp(0, ACT_MAX) * ACT_SCALE
            v = round_ste(self.out(a))
            new_index = (index + v[:, : self.M]).clamp(0, self.levels - 1)
            new_mean = (mean + v[:, self.M :] * MEAN_SCALE).clamp(-limit, limit)
        return new_index, new_mean

    def export(self) -> list[dict[str, np.ndarray]]:
        """Integer weights and biases [anchors, hyper, mid, out], checked against exact float64.
        The anchors' weights keep only the cross, (hidden, M, 4) in raster order of its taps;
        the first layer's bias is all in the anchors' entry."""
        with torch.no_grad():
            self.anchors.weight.mul_(self.anchors.mask)
        layers = []
        first = [self.anchors.export(), self.hyper.export()]
        per_out = sum(w.abs().sum(dim=(1, 2, 3)) for w, _ in first)
        bound = float((per_out * INPUT_LIMIT + first[1][1].abs() + first[0][1].abs()).max())
        cross = first[0][0][:, :, CROSS.bool()]
        for w, b in [(cross, first[0][1] + first[1][1]), (first[1][0], torch.zeros_like(first[1][1]))]:
            layers.append({"weight": w.numpy().astype(np.int64), "bias": b.numpy().astype(np.int64)})
        for layer in (self.mid, self.out):
            w, b = layer.export()
            bound = max(bound, float((w.abs().sum(dim=(1, 2, 3)) * ACT_MAX + b.abs()).max()))
            layers.append({"weight": w.numpy().astype(np.int64), "bias": b.numpy().astype(np.int64)})
        if bound >= EXACT_LIMIT:
            raise ValueError(f"integer context layer may reach {bound:.3g}, beyond exact float64")
        return layers

    def load_integers(self, layers: list[dict[str, np.ndarray]]) -> None:
        """The inverse of `export`: the float values the integers stand for."""
        anchors, hyper, mid, out = layers
        full = np.zeros(tuple(self.anchors.weight.shape), np.int64)
        full[:, :, CROSS.bool().numpy()] = anchors["weight"]
        self.anchors.load_integers(full, anchors["bias"])
        for layer, ints in zip((self.hyper, self.mid, self.out), (hyper, mid, out)):
            layer.load_integers(ints["weight"], ints["bias"])


def _requantize(acc: torch.Tensor) -> torch.Tensor:
    return acc.mul_(2.0**-FRACTION_BITS).add_(0.5).floor_()


def run_exact(layers: list[dict[str, np.ndarray]], symbols: np.ndarray, index: np.ndarray,
              mean_int: np.ndarray, levels: int, band: int = 32) -> None:
    """Correct index and mean_int (int32, (M, h, w)) in place at the non-anchors, from the
    y symbols of the anchors (the other positions of `symbols` are not read).

    Only the non-anchors are computed: the cross of anchor neighbours as four matrix products
    (one per neighbour), then the 1x1 layers. Runs in bands of `band` rows with one row of
    context on each side: memory stays bounded, and the result equals one pass over the whole
    latent, since every step is exact.
    """
    M, h, w = index.shape
    weights = [{k: torch.from_numpy(v.astype(np.float64)) for k, v in layer.items()} for layer in layers]
    w_cross = weights[0]["weight"]  # (hidden, M, 4): one matrix per anchor neighbour
    w_hyper, w_mid, w_out = (layer["weight"][:, :, 0, 0] for layer in weights[1:])
    b_first, b_mid, b_out = (layer["bias"][:, None] for layer in (weights[0], weights[2], weights[3]))
    taps = [(dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1) if CROSS[dr + 1, dc + 1]]
    anchors = anchor_mask(h, w)
    with torch.no_grad():
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            lo, hi = max(0, r0 - 1), min(h, r1 + 1)
            y_hat_int = 16 * symbols[:, lo:hi].astype(np.int64) + mean_int[:, lo:hi]
            y_hat_int = np.where(anchors[lo:hi], np.clip(y_hat_int, -INPUT_LIMIT, INPUT_LIMIT), 0)
            x = np.pad(y_hat_int.astype(np.float64), ((0, 0), (1, 1), (1, 1)))  # zeros beyond the edges
            targets = ~anchors[r0:r1]
            rows, cols = np.nonzero(targets)
            rows = rows + (r0 - lo) + 1  # in the padded band
            hyper = np.concatenate([16 * index[:, r0:r1][:, targets],
                                    np.clip(mean_int[:, r0:r1][:, targets], -INPUT_LIMIT, INPUT_LIMIT)])
            acc = torch.addmm(b_first, w_hyper, torch.from_numpy(hyper.astype(np.float64)))
            for k, (dr, dc) in enumerate(taps):
                acc.addmm_(w_cross[:, :, k], torch.from_numpy(x[:, rows + dr, cols + 1 + dc]))
            a = _requantize(acc).clamp_(0, ACT_MAX)
            a = _requantize(torch.addmm(b_mid, w_mid, a)).clamp_(0, ACT_MAX)
            v = _requantize(torch.addmm(b_out, w_out, a)).numpy().astype(np.int64)
            rows_index, rows_mean = index[:, r0:r1], mean_int[:, r0:r1]
            rows_index[:, targets] = np.clip(rows_index[:, targets] + v[:M], 0, levels - 1)
            rows_mean[:, targets] = np.clip(rows_mean[:, targets] + v[M:], -MEAN_LIMIT, MEAN_LIMIT)
