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
for coding `correct` evaluates the exported integers in float64 where every sum is exact, so
the tables the decoder picks are bit-identical to the encoder's on any machine.

Their inputs are integers in units of MEAN_SCALE: a decoded y_hat' = symbol + mean is
16 * symbol + mean_int, the index enters as 16 * index. Last layers start at zero, so an
untrained context model leaves the hyperprior's tables exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .intnet import ACT_MAX, ACT_SCALE, EXACT_LIMIT, FRACTION_BITS, MEAN_LIMIT, MEAN_SCALE, QuantizedConv
from .layers import round_ste

INPUT_LIMIT = MEAN_LIMIT  # inputs (units of MEAN_SCALE) are clipped to +-this on the way in
DIAGONAL = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])  # an anchor and its anchor neighbours
WINDOWS = (3, 5)  # sides of the window the CROSS taps may span
LAYERS = 4  # integer layers per network: taps, hyper, mid, out


def cross(window: int) -> torch.Tensor:
    """The anchors in a window centred on another position: the squares of the other colour,
    4 of them in a 3x3 window, 12 in a 5x5 one."""
    if window not in WINDOWS:
        raise ValueError(f"the context window must be one of {WINDOWS}, got {window}")
    offsets = torch.arange(window) - window // 2
    return ((offsets[:, None] + offsets[None, :]) % 2).float()



def anchor_mask(h: int, w: int) -> np.ndarray:
    """True where a latent is an anchor: (row + col) even. Same for every channel."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


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

    def correct(self, y_hat: torch.Tensor, index: torch.Tensor, mean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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


@dataclass(frozen=True)
class Part:
    """One part of the y stream: some channels, at the anchors or at the other positions."""

    channels: slice  # coded in this part
    anchors: bool
    layers: list[dict[str, np.ndarray]] | None  # the network correcting its tables; None: the hyperprior's
    corrects: slice | None = None  # the channels whose tables `layers` correct; None: `channels`
    window: int = 3  # side of the window the CROSS network's taps span

    @property
    def corrected(self) -> slice:
        return self.channels if self.corrects is None else self.corrects

    @property
    def cross(self) -> bool:
        """The first part of the other positions: its network reads their anchor neighbours."""
        return not self.anchors and self.channels.start == 0

    @property
    def taps(self) -> torch.Tensor:
        """Where its network reads, around each of its positions."""
        return cross(self.window) if self.cross else DIAGONAL

    def positions(self, h: int, w: int) -> np.ndarray:
        mask = anchor_mask(h, w)
        return mask if self.anchors else ~mask


def parts(nets: list[list[dict[str, np.ndarray]]], M: int, slices: int, window: int = 3) -> list[Part]:
    """The parts of y in coding order, for the exported networks of a context model whose
    anchors are coded in `slices` groups and whose CROSS network spans a `window` x `window`
    window (`CheckerboardContext.export`)."""
    non_anchors, *rest = nets
    size = M // slices
    anchors = [Part(slice(k * size, (k + 1) * size), True, layers)
               for k, layers in enumerate([None, *rest[: slices - 1]])]
    later = rest[slices - 1 :]
    size = M // (len(later) + 1)
    others = [Part(slice(0, size), False, non_anchors, slice(0, M), window)]
    others += [Part(slice(k * size, (k + 1) * size), False, layers) for k, layers in enumerate(later, start=1)]
    return [*anchors, *others]


def _requantize(acc: torch.Tensor) -> torch.Tensor:
    return acc.mul_(2.0**-FRACTION_BITS).add_(0.5).floor_()


def correct(part: Part, symbols: np.ndarray, index: np.ndarray, mean_int: np.ndarray, levels: int,
            band: int = 32) -> None:
    """Correct index and mean_int (int32, (M, h, w)) in place for one part, from the y symbols
    decoded before it: the anchors of all channels, or the channels before the part's at its
    own positions.

    Only the part's positions are computed: all taps as one matrix product, then the 1x1
    layers. Runs in bands of `band` rows with the window's reach of context on each side: memory
    stays bounded, and the result equals one pass over the whole latent, since every step is exact.
    """
    taps, seen = part.taps, index.shape[0] if part.cross else part.channels.start
    reach = taps.shape[-1] // 2
    weights = [{k: torch.from_numpy(v.astype(np.float64)) for k, v in layer.items()} for layer in part.layers]
    w_taps = weights[0]["weight"].flatten(1)  # (hidden, seen * taps): one matrix for all taps
    w_hyper, w_mid, w_out = (layer["weight"][:, :, 0, 0] for layer in weights[1:])
    b_first, b_mid, b_out = (layer["bias"][:, None] for layer in (weights[0], weights[2], weights[3]))
    around = range(-reach, reach + 1)
    offsets = np.array([(dr, dc) for dr in around for dc in around if taps[dr + reach, dc + reach]])
    coded_index, coded_mean = index[part.corrected], mean_int[part.corrected]  # views: written in place
    G, h, w = coded_index.shape
    targets = part.positions(h, w)
    with torch.no_grad():
        for r0 in range(0, h, band):
            r1 = min(h, r0 + band)
            lo, hi = max(0, r0 - reach), min(h, r1 + reach)
            # y_hat' of the seen channels, zeros beyond the edges. The taps of a target only ever
            # land on positions the part reads (the anchors, or its own side of the checkerboard),
            # so the others need no masking.
            x = np.zeros((seen, hi - lo + 2 * reach, w + 2 * reach))
            inner = x[:, reach:-reach, reach:-reach]
            np.multiply(symbols[:seen, lo:hi], 16.0, out=inner)
            inner += mean_int[:seen, lo:hi]
            np.clip(inner, -INPUT_LIMIT, INPUT_LIMIT, out=inner)
            at = targets[r0:r1]
            rows, cols = np.nonzero(at)
            rows = rows + (r0 - lo) + reach  # in the padded band
            flat = (rows + offsets[:, :1]) * (w + 2 * reach) + cols + reach + offsets[:, 1:]  # (taps, positions)
            seen_taps = np.take(x.reshape(seen, -1), flat, axis=1)  # (seen, taps, positions)
            seen_taps = torch.from_numpy(seen_taps.reshape(seen * len(offsets), len(rows)))
            band_index, band_mean = coded_index[:, r0:r1], coded_mean[:, r0:r1]
            hyper = np.concatenate([16 * band_index[:, at], np.clip(band_mean[:, at], -INPUT_LIMIT, INPUT_LIMIT)])
            acc = torch.addmm(b_first, w_hyper, torch.from_numpy(hyper.astype(np.float64)))
            acc.addmm_(w_taps, seen_taps)
            a = _requantize(acc).clamp_(0, ACT_MAX)
            a = _requantize(torch.addmm(b_mid, w_mid, a)).clamp_(0, ACT_MAX)
            v = _requantize(torch.addmm(b_out, w_out, a)).numpy().astype(np.int64)
            band_index[:, at] = np.clip(band_index[:, at] + v[:G], 0, levels - 1)
            band_mean[:, at] = np.clip(band_mean[:, at] + v[G:], -MEAN_LIMIT, MEAN_LIMIT)
