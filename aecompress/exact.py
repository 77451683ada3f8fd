"""The exact integer networks that choose every symbol's table, in numpy (no torch).

The entropy coder needs bit-identical tables on both sides, so h_s (z_hat -> scale index and
mean of every latent of y) and the context model's corrections run as integer networks
(Balle, Johnston, Minnen, "Integer networks for data compression with latent-variable
models", ICLR 2019). Every layer is

    acc   = conv(x_int, W_int) + b_int            (integers)
    x_out = floor(acc / 2**FRACTION_BITS + 1/2)   (clipped to [0, ACT_MAX] between layers)

evaluated in float64, where sums of integers are exact while every partial sum stays below
2**53 (the exporters in intnet.py and context.py check that bound for the worst input). The
result depends on no convolution algorithm, thread count or CPU, because no step rounds.
The networks train in float on the integer grid: intnet.py and context.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import npnet

FRACTION_BITS = 16
ACT_SCALE = 1.0 / 256  # a hidden activation x_int stands for x_int * ACT_SCALE
ACT_MAX = 2**16 - 1
Z_LIMIT = 2**10  # z_hat is clipped to [-Z_LIMIT, Z_LIMIT] on its way into h_s
MEAN_SCALE = 1.0 / 16  # a mean mu_int stands for mu_int * MEAN_SCALE
MEAN_LIMIT = 2**20
EXACT_LIMIT = 2**52
INPUT_LIMIT = MEAN_LIMIT  # context inputs (units of MEAN_SCALE) are clipped to +-this
DIAGONAL = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])  # an anchor and its anchor neighbours
WINDOWS = (3, 5)  # sides of the window the CROSS taps may span
CONTEXT_LAYERS = 4  # integer layers per context network: taps, hyper, mid, out


def means(mean_int: np.ndarray) -> np.ndarray:
    """Integer means -> the float32 means they stand for. Exact, and so is mean + symbol:
    MEAN_SCALE is a power of two and the values stay far inside float32's 24-bit mantissa."""
    out = mean_int.astype(np.float32)
    out *= np.float32(MEAN_SCALE)
    return out


def _requantize(acc: np.ndarray) -> np.ndarray:
    acc *= 2.0**-FRACTION_BITS
    acc += 0.5
    return np.floor(acc, out=acc)


def h_s(layers: list[dict[str, np.ndarray]], z_hat: np.ndarray, size: tuple[int, int], levels: int,
        band: int = 16, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Integer h_s on int64 z_hat (N, h, w): returns (index, mean_int), each (M, *size), int32.

        z_hat (N) --deconv5/2--> QReLU --deconv5/2--> QReLU --conv3--> [index (M), mean (M)]

    Runs in bands of `band` z rows with 2 rows of context on each side (more than h_s reaches):
    memory stays bounded for any image, and the result is identical to one pass over the whole
    z, since every step is exact. In float32 (`dtype`) it is about twice as fast but no longer
    exact: sums round, so an odd table differs. Only estimates take that (rate control)."""
    hy, wy = size
    first, second, last = layers
    deconvs = [npnet.Deconv.of(first["weight"], first["bias"], dtype),
               npnet.Deconv.of(second["weight"], second["bias"], dtype)]
    conv = npnet.Conv.of(last["weight"], last["bias"], 1, dtype)
    z = np.clip(z_hat, -Z_LIMIT, Z_LIMIT).astype(dtype).transpose(1, 2, 0)  # (h, w, N)
    out = np.empty((hy, wy, last["weight"].shape[0]), np.int32)
    for r0 in range(0, z.shape[0], band):
        r1 = min(z.shape[0], r0 + band)
        lo, hi = max(0, r0 - 2), min(z.shape[0], r1 + 2)
        y0, y1 = 4 * r0, min(hy, 4 * r1)
        if y0 >= y1:
            break
        x = z[lo:hi]
        for deconv in deconvs:
            x = np.clip(_requantize(deconv(x)[:, : wy + 2]), 0, ACT_MAX)
        acc = _requantize(conv(x))
        out[y0:y1] = acc[4 * (r0 - lo) : 4 * (r0 - lo) + y1 - y0, :wy]
    out = out.transpose(2, 0, 1)
    M = out.shape[0] // 2
    index, mean_int = np.ascontiguousarray(out[:M]), np.ascontiguousarray(out[M:])
    np.clip(index, 0, levels - 1, out=index)
    np.clip(mean_int, -MEAN_LIMIT, MEAN_LIMIT, out=mean_int)
    return index, mean_int


def cross(window: int) -> np.ndarray:
    """The anchors in a window centred on another position: the squares of the other colour,
    4 of them in a 3x3 window, 12 in a 5x5 one."""
    if window not in WINDOWS:
        raise ValueError(f"the context window must be one of {WINDOWS}, got {window}")
    offsets = np.arange(window) - window // 2
    return ((offsets[:, None] + offsets[None, :]) % 2).astype(np.float64)


def anchor_mask(h: int, w: int) -> np.ndarray:
    """True where a latent is an anchor: (row + col) even. Same for every channel."""
    return (np.add.outer(np.arange(h), np.arange(w)) % 2) == 0


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
    def taps(self) -> np.ndarray:
        """Where its network reads, around each of its positions."""
        return cross(self.window) if self.cross else DIAGONAL

    def positions(self, h: int, w: int) -> np.ndarray:
        mask = anchor_mask(h, w)
        return mask if self.anchors else ~mask


def parts(nets: list[list[dict[str, np.ndarray]]], M: int, slices: int, window: int = 3) -> list[Part]:
    """The parts of y in coding order, for the exported networks of a context model whose
    anchors are coded in `slices` groups and whose CROSS network spans a `window` x `window`
    window (`context.CheckerboardContext.export`)."""
    non_anchors, *rest = nets
    size = M // slices
    anchors = [Part(slice(k * size, (k + 1) * size), True, layers)
               for k, layers in enumerate([None, *rest[: slices - 1]])]
    later = rest[slices - 1 :]
    size = M // (len(later) + 1)
    others = [Part(slice(0, size), False, non_anchors, slice(0, M), window)]
    others += [Part(slice(k * size, (k + 1) * size), False, layers) for k, layers in enumerate(later, start=1)]
    return [*anchors, *others]


def correct(part: Part, symbols: np.ndarray, index: np.ndarray, mean_int: np.ndarray, levels: int,
            band: int = 32, dtype=np.float64) -> None:
    """Correct index and mean_int (int32, (M, h, w)) in place for one part, from the y symbols
    decoded before it: the anchors of all channels, or the channels before the part's at its
    own positions.

    Only the part's positions are computed: all taps as one matrix product, then the 1x1
    layers. Runs in bands of `band` rows with the window's reach of context on each side: memory
    stays bounded, and the result equals one pass over the whole latent, since every step is exact.
    `dtype`: as h_s's.
    """
    if part.layers is None:
        raise ValueError("this part keeps the hyperprior's tables: it has no network to correct them")
    taps, seen = part.taps, index.shape[0] if part.cross else part.channels.start
    reach = taps.shape[-1] // 2
    weights = [{k: v.astype(dtype) for k, v in layer.items()} for layer in part.layers]
    w_taps = weights[0]["weight"].reshape(weights[0]["weight"].shape[0], -1)  # (hidden, seen * taps)
    w_hyper, w_mid, w_out = (layer["weight"][:, :, 0, 0] for layer in weights[1:])
    b_first, b_mid, b_out = (layer["bias"][:, None] for layer in (weights[0], weights[2], weights[3]))
    around = range(-reach, reach + 1)
    offsets = np.array([(dr, dc) for dr in around for dc in around if taps[dr + reach, dc + reach]])
    coded_index, coded_mean = index[part.corrected], mean_int[part.corrected]  # views: written in place
    G, h, w = coded_index.shape
    targets = part.positions(h, w)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        lo, hi = max(0, r0 - reach), min(h, r1 + reach)
        # y_hat' of the seen channels, zeros beyond the edges. The taps of a target only ever
        # land on positions the part reads (the anchors, or its own side of the checkerboard),
        # so the others need no masking.
        x = np.zeros((seen, hi - lo + 2 * reach, w + 2 * reach), dtype)
        inner = x[:, reach:-reach, reach:-reach]
        np.multiply(symbols[:seen, lo:hi], 16.0, out=inner)
        inner += mean_int[:seen, lo:hi]
        np.clip(inner, -INPUT_LIMIT, INPUT_LIMIT, out=inner)
        at = targets[r0:r1]
        rows, cols = np.nonzero(at)
        rows = rows + (r0 - lo) + reach  # in the padded band
        flat = (rows + offsets[:, :1]) * (w + 2 * reach) + cols + reach + offsets[:, 1:]  # (taps, positions)
        seen_taps = np.take(x.reshape(seen, -1), flat, axis=1).reshape(seen * len(offsets), len(rows))
        band_index, band_mean = coded_index[:, r0:r1], coded_mean[:, r0:r1]
        hyper = np.concatenate([16 * band_index[:, at], np.clip(band_mean[:, at], -INPUT_LIMIT, INPUT_LIMIT)])
        acc = w_hyper @ hyper.astype(dtype)
        acc += b_first
        acc += w_taps @ seen_taps
        a = np.clip(_requantize(acc), 0, ACT_MAX)
        a = np.clip(_requantize(w_mid @ a + b_mid), 0, ACT_MAX)
        v = _requantize(w_out @ a + b_out).astype(np.int64)
        band_index[:, at] = np.clip(band_index[:, at] + v[:G], 0, levels - 1)
        band_mean[:, at] = np.clip(band_mean[:, at] + v[G:], -MEAN_LIMIT, MEAN_LIMIT)
