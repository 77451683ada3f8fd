"""The context model: the latents of y decoded first sharpen the tables of the rest.

He et al., "Checkerboard context model for efficient learned image compression", CVPR 2021.
The latents of y are split like the squares of a checkerboard. Anchors ((row + col) even) are
coded first. Once they are decoded, every other latent sees its four anchor neighbours (all
channels), and a small integer network corrects the hyperprior's scale index and mean there.
With `window` 5 it sees the twelve anchors of the 5x5 window around it instead (He et al.'s
5x5 checkerboard convolution), for a few more operations in that one network.

With `slices` > 1 the anchors are coded in that many equal groups of channels, and the tables
of each group are corrected the same way from the groups before it, at the same position and
its four diagonal anchor neighbours (a channel-wise context, as in Minnen and Singh,
"Channel-wise autoregressive entropy models for learned image compression", ICIP 2020):

    part 1      anchors, channels of group 1      the hyperprior's tables
    part k      anchors, channels of group k      corrected from groups 1..k-1   (DIAGONAL taps)
    last part   other positions, all channels     corrected from all anchors     (CROSS taps)

With `non_anchor_slices` > 1 the other positions are coded in channel groups too, as in He et
al., "ELIC: efficient learned image compression with unevenly grouped space-channel contextual
adaptive coding", CVPR 2022 (there with uneven groups). The CROSS correction still sees all
anchors and corrects every channel; each later group is then corrected once more from the
groups before it, at the same position and its four diagonal neighbours, which are other
positions too:

    part        other positions, group 1          corrected from all anchors     (CROSS taps)
    part k      other positions, group k          ... and from groups 1..k-1     (DIAGONAL taps)

Every correction is one network (`ContextNet`):

    [decoded y_hat, taps of a 3x3 window]  --conv-+      (5x5 for CROSS with `window` 5)
    [16 * index, mean] (1x1)               --conv-+--> QReLU --1x1--> QReLU --1x1--> [d_index, d_mean]

    index' = clip(index + d_index),  mean' = mean + d_mean

Each part needs only one network run before it, so decoding stays parallel within a part.
Like h_s (intnet.py) these are integer networks: they train in float on the integer grid, and
for coding `exact.correct` evaluates the exported integers in float64 where every sum is exact, so
the tables the decoder picks are bit-identical to the encoder's on any machine.

Their inputs are integers in units of MEAN_SCALE: a decoded y_hat' = symbol + mean is
16 * symbol + mean_int, the index enters as 16 * index. Last layers start at zero, so an
untrained context model leaves the hyperprior's tables exactly as they were.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from . import exact
from .exact import ACT_MAX, ACT_SCALE, EXACT_LIMIT, INPUT_LIMIT, MEAN_SCALE, anchor_mask
from .intnet import QuantizedConv
from .layers import round_ste

LAYERS = exact.CONTEXT_LAYERS
DIAGONAL = torch.from_numpy(exact.DIAGONAL).float()  # an anchor and its anchor neighbours


def cross(window: int) -> torch.Tensor:
    return torch.from_numpy(exact.cross(window)).float()


class ContextNet(nn.Module):
    """One correction: `seen` decoded channels (through `taps`, at the anchors or, without
    `reads_anchors`, at the other positions) and the index and mean so far of `coded`
    channels -> their corrected index and mean."""

    def __init__(self, seen: int, coded: int, hidden: int, levels: int, taps: torch.Tensor,
                 reads_anchors: bool = True):
        super().__init__()
        self.coded, self.levels, self.reads_anchors = coded, levels, reads_anchors
        act = torch.full((hidden,), ACT_SCALE)
        out = torch.cat([torch.ones(coded), torch.full((coded,), MEAN_SCALE)])
        self.anchors = QuantizedConv(seen, hidden, taps.shape[-1], 1, False, MEAN_SCALE, act)
        self.hyper = QuantizedConv(2 * coded, hidden, 1, 1, False, MEAN_SCALE, act)
        self.mid = QuantizedConv(hidden, hidden, 1, 1, False, ACT_SCALE, act)
        self.out = QuantizedConv(hidden, 2 * coded, 1, 1, False, ACT_SCALE, out)
        self.anchors.register_buffer("mask", taps.expand(hidden, seen, *taps.shape).clone(), persistent=False)
        with torch.no_grad():
            self.hyper.bias.fill_(0.5)  # hidden units start awake
            self.out.weight.zero_()
            self.out.bias.zero_()

    def correct(self, y_hat: torch.Tensor, index: torch.Tensor,
                mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path. y_hat: gained y_hat' of the seen channels (only the positions the
        network reads matter), index on the integer grid and mean in real units of the coded
        channels, all (B, C, h, w) -> corrected (index, mean) at every position; only the
        target positions are meant to be used."""
        with torch.no_grad():  # weights off the taps stay zero, whatever the optimizer did
            self.anchors.weight.mul_(self.anchors.mask)
        h, w = y_hat.shape[-2:]
        keep = torch.from_numpy(anchor_mask(h, w) == self.reads_anchors).to(y_hat.device)
        limit = INPUT_LIMIT * MEAN_SCALE
        x = (y_hat.float() * keep).clamp(-limit, limit)
        hyper = torch.cat([index.float() * 16 * MEAN_SCALE, mean.float().clamp(-limit, limit)], 1)
        a = round_ste(self.anchors(x) + self.hyper(hyper)).clamp(0, ACT_MAX) * ACT_SCALE
        a = round_ste(self.mid(a)).clamp(0, ACT_MAX) * ACT_SCALE
        v = round_ste(self.out(a))
        new_index = (index + v[:, : self.coded]).clamp(0, self.levels - 1)
        new_mean = (mean + v[:, self.coded :] * MEAN_SCALE).clamp(-limit, limit)
        return new_index, new_mean

    def export(self) -> list[dict[str, np.ndarray]]:
        """Integer weights and biases [taps, hyper, mid, out], checked against exact float64.
        The first layer keeps only its taps, (hidden, seen, taps) in raster order; the first
        layer's bias is all in the taps' entry."""
        with torch.no_grad():
            self.anchors.weight.mul_(self.anchors.mask)
        layers = []
        first = [self.anchors.export(), self.hyper.export()]
        per_out = sum(w.abs().sum(dim=(1, 2, 3)) for w, _ in first)
        bound = float((per_out * INPUT_LIMIT + first[1][1].abs() + first[0][1].abs()).max())
        taps = first[0][0][:, :, self.anchors.mask[0, 0].bool()]
        for w, b in [(taps, first[0][1] + first[1][1]), (first[1][0], torch.zeros_like(first[1][1]))]:
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
        taps, hyper, mid, out = layers
        full = np.zeros(tuple(self.anchors.weight.shape), np.int64)
        full[:, :, self.anchors.mask[0, 0].bool().numpy()] = taps["weight"]
        self.anchors.load_integers(full, taps["bias"])
        for layer, ints in zip((self.hyper, self.mid, self.out), (hyper, mid, out)):
            layer.load_integers(ints["weight"], ints["bias"])


class CheckerboardContext(ContextNet):
    """The network of the non-anchors (from all anchors in a `window` x `window` window), plus
    one network for each channel group after the first, of the anchors and of the other
    positions (from the groups before it at the same positions; `hidden` // 2 channels)."""

    def __init__(self, M: int, hidden: int, levels: int, slices: int = 1, non_anchor_slices: int = 1,
                 window: int = 3):
        super().__init__(M, M, hidden, levels, cross(window))
        for n, where in ((slices, "anchors"), (non_anchor_slices, "other positions")):
            if n < 1 or M % n:
                raise ValueError(f"the {where}' {M} channels do not split into {n} equal groups")
        small = max(1, hidden // 2)
        group = M // slices
        self.slices = nn.ModuleList(ContextNet(k * group, group, small, levels, DIAGONAL)
                                    for k in range(1, slices))
        group = M // non_anchor_slices
        self.non_anchor_slices = nn.ModuleList(ContextNet(k * group, group, small, levels, DIAGONAL, False)
                                               for k in range(1, non_anchor_slices))

    def forward(self, y: torch.Tensor, index: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: gained y' and the hyperprior's index (integer grid) and mean, all
        (B, M, h, w) -> the index and mean each latent is coded with."""
        with torch.autocast(y.device.type, enabled=False):
            y = y.float()
            keep = torch.from_numpy(anchor_mask(*y.shape[-2:])).to(y.device)
            index, mean = _by_groups(self.slices, y, index, mean, keep)
            new_index, new_mean = self.correct(round_ste(y - mean) + mean, index, mean)
            index, mean = torch.where(keep, index, new_index), torch.where(keep, mean, new_mean)
            return _by_groups(self.non_anchor_slices, y, index, mean, ~keep)

    def export(self) -> list[list[dict[str, np.ndarray]]]:
        """The integer networks: the non-anchors' first, then one per further anchor group, then
        one per further group of the other positions."""
        return [super().export(), *(net.export() for net in [*self.slices, *self.non_anchor_slices])]

    def load_integers(self, nets: list[list[dict[str, np.ndarray]]]) -> None:
        super().load_integers(nets[0])
        for net, layers in zip([*self.slices, *self.non_anchor_slices], nets[1:], strict=True):
            net.load_integers(layers)


def _by_groups(nets: nn.ModuleList, y: torch.Tensor, index: torch.Tensor, mean: torch.Tensor,
               where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the channels into len(nets) + 1 equal groups; at the positions `where`, nets[k - 1]
    corrects the index and mean of group k + 1 from the decoded groups 1..k."""
    group = y.shape[1] // (len(nets) + 1)
    indexes, means = list(index.split(group, 1)), list(mean.split(group, 1))
    for k, net in enumerate(nets, start=1):
        seen_mean = torch.cat(means[:k], 1)
        y_hat = round_ste(y[:, : k * group] - seen_mean) + seen_mean
        new_index, new_mean = net.correct(y_hat, indexes[k], means[k])
        indexes[k] = torch.where(where, new_index, indexes[k])
        means[k] = torch.where(where, new_mean, means[k])
    return torch.cat(indexes, 1), torch.cat(means, 1)
