"""Convolutions, GDN and the float transforms in numpy: coding without importing torch.

Activations are channels-last (H, W, C), so a convolution is one matrix product over patches
(im2col) and GDN's channel mixing is one more. Both run on NumPy's BLAS. Work is done a band
of output rows at a time, so the patch matrix stays small for any image.

A stride-2 transposed convolution with a 5x5 kernel (padding 2, output padding 1) is computed
from its four output phases: output pixel (2i + a, 2j + b) reads input pixels (i + di, j + dj)
with di, dj in {-1, 0, 1} through tap (a + 2 - 2 di, b + 2 - 2 dj) of the kernel, when that
tap exists. So products of the input's 3x3 patches give all four phases at once: one for
the output rows of each phase a, each written straight into its rows.

The same functions evaluate the integer networks exactly in float64 (exact.py): sums of
integers below 2**53 come out the same in any order, so BLAS kernels cannot change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

BAND_ELEMENTS = 1 << 23  # patch-matrix entries per band (32 MB in float32)
PerPixel = Callable[[np.ndarray], None]  # works in place on rows (pixels, channels)
Product = tuple[int, np.ndarray, np.ndarray]  # (first patch column it reads, matrix, bias)


def _patches(xp: np.ndarray, rows: slice, k: int, stride: int, out_w: int) -> np.ndarray:
    """Patches (rows * out_w, k * k * C) of a padded input (H, W, C), for output rows `rows`."""
    H, W, C = xp.shape
    s0, s1, s2 = xp.strides
    n = rows.stop - rows.start
    view = np.lib.stride_tricks.as_strided(
        xp[rows.start * stride :], shape=(n, out_w, k, k, C),
        strides=(stride * s0, stride * s1, s0, s1, s2), writeable=False)
    return view.reshape(n * out_w, k * k * C)


def _banded(xp: np.ndarray, k: int, stride: int, out_h: int, out_w: int, products: list[Product],
            write: Callable[[int, int, list[np.ndarray]], None], then: PerPixel | None) -> None:
    """Output rows of each product (patches[:, first:] @ matrix + bias), a band of rows at a
    time, in buffers that stay in cache: `then` runs on each band in place, and
    `write(r0, r1, bands)` puts the bands' rows [r0, r1) where they belong."""
    per_row = max(1, BAND_ELEMENTS // max(1, out_w * k * k * xp.shape[2]))
    n = min(per_row, out_h) * out_w
    buffers = [np.empty((n, matrix.shape[1]), matrix.dtype) for _, matrix, _ in products]
    for r0 in range(0, out_h, per_row):
        rows = slice(r0, min(out_h, r0 + per_row))
        patches = _patches(xp, rows, k, stride, out_w)
        bands = [buffer[: patches.shape[0]] for buffer in buffers]
        for band, (first, matrix, bias) in zip(bands, products):
            np.matmul(patches[:, first:], matrix, out=band)
            band += bias
            if then is not None:
                then(band)
        write(r0, rows.stop, bands)


def _framed(h: int, w: int, c: int, frame: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """An (h, w, c) array inside a frame of zeros `frame` wide: (framed array, its inside)."""
    if not frame:
        out = np.empty((h, w, c), dtype)
        return out, out
    out = np.zeros((h + 2 * frame, w + 2 * frame, c), dtype)
    return out, out[frame : frame + h, frame : frame + w]


@dataclass(frozen=True)
class Conv:
    """A convolution (torch layout weight (O, C, k, k)) with `padding` = k // 2."""

    matrix: np.ndarray  # (k * k * C, O)
    bias: np.ndarray  # (O,)
    kernel: int
    stride: int

    @staticmethod
    def of(weight: np.ndarray, bias: np.ndarray, stride: int, dtype=np.float32) -> Conv:
        O, C, k, _ = weight.shape
        matrix = np.ascontiguousarray(weight.transpose(2, 3, 1, 0).reshape(k * k * C, O), dtype)
        return Conv(matrix, bias.astype(dtype), k, stride)

    def __call__(self, x: np.ndarray, then: PerPixel | None = None, padded: bool = False,
                 frame: int = 0) -> np.ndarray:
        """x (H, W, C) -> (H', W', O). `then`: runs on the output's pixels (rows (P, O)), band by
        band. `padded`: x already carries the zero frame of the padding (a previous layer's
        `frame`), so no padded copy is made. `frame`: the output comes inside a zero frame this
        wide, ready as the padded input of the next layer."""
        k, s, p = self.kernel, self.stride, self.kernel // 2
        xp = x if padded else np.pad(x, ((p, p), (p, p), (0, 0)))
        out_h, out_w = (xp.shape[0] - k) // s + 1, (xp.shape[1] - k) // s + 1
        out, inside = _framed(out_h, out_w, self.matrix.shape[1], frame, self.matrix.dtype)

        def write(r0: int, r1: int, bands: list[np.ndarray]) -> None:
            inside[r0:r1] = bands[0].reshape(r1 - r0, out_w, -1)

        _banded(xp, k, s, out_h, out_w, [(0, self.matrix, self.bias)], write, then)
        return out


@dataclass(frozen=True)
class Deconv:
    """A stride-2 transposed convolution, 5x5 (torch layout weight (C, O, 5, 5)), that exactly
    doubles the size: computed by phases (module docstring). With few outputs (g_s's last
    layer, 3 channels) the input's patches would cost more than the product, so each input
    pixel's 25 x O contributions are computed instead and added into place (col2im)."""

    # Phases: for output rows of phase a = 0 and a = 1, [3x3 input patch] -> [phase b, O], (9 C, 2 O)
    # and (6 C, 2 O): the rows a = 1 never read input row i - 1 (through tap 5, which a 5x5
    # kernel lacks), so their product starts past those patch columns, a sixth fewer
    # multiplications than one (9 C, 4 O) product. col2im: one (25 O, C).
    matrices: tuple[np.ndarray, ...]
    bias: np.ndarray  # (O,)
    scatter: bool  # col2im rather than phases

    @staticmethod
    def of(weight: np.ndarray, bias: np.ndarray, dtype=np.float32) -> Deconv:
        C, O, k, _ = weight.shape
        if k != 5:
            raise ValueError("only 5x5 transposed convolutions are supported")
        if O <= 8:
            matrix = weight.transpose(2, 3, 1, 0).reshape(25 * O, C)
            return Deconv((np.ascontiguousarray(matrix, dtype),), bias.astype(dtype), True)
        matrix = np.zeros((2, 3, 3, C, 2, O), dtype)  # (a, di, dj, C, b, O)
        for a in (0, 1):
            for b in (0, 1):
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        ty, tx = a + 2 - 2 * di, b + 2 - 2 * dj
                        if ty <= 4 and tx <= 4:
                            matrix[a, di + 1, dj + 1, :, b] = weight[:, :, ty, tx]
        rows_0, rows_1 = matrix[0].reshape(9 * C, 2 * O), matrix[1, 1:].reshape(6 * C, 2 * O)
        return Deconv((rows_0, np.ascontiguousarray(rows_1)), bias.astype(dtype), False)

    def __call__(self, x: np.ndarray, then: PerPixel | None = None, padded: bool = False,
                 frame: int = 0) -> np.ndarray:
        """x (H, W, C) -> (2 H, 2 W, O); `then`, `padded` (a frame of 1) and `frame` as for Conv.
        The four phases of a band are written straight into their places."""
        if self.scatter:
            if padded or frame:
                raise ValueError("a transposed convolution with few outputs takes and gives no frame")
            return self._scatter(x)
        xp = x if padded else np.pad(x, ((1, 1), (1, 1), (0, 0)))
        H, W = xp.shape[0] - 2, xp.shape[1] - 2
        O = self.bias.size
        out, inside = _framed(2 * H, 2 * W, O, frame, self.bias.dtype)

        def write(r0: int, r1: int, bands: list[np.ndarray]) -> None:
            # The band of phase a, (row i, column j, b, O), is output row 2 i + a, columns 2 j + b:
            # one copy into a view of the output's rows with its axes split.
            rows = inside[2 * r0 : 2 * r1].reshape(r1 - r0, 2, W, 2 * O)
            for a, band in enumerate(bands):
                rows[:, a] = band.reshape(r1 - r0, W, 2 * O)

        C = xp.shape[2]
        bias = np.tile(self.bias, 2)
        products = [(0, self.matrices[0], bias), (3 * C, self.matrices[1], bias)]
        per_pixel = None if then is None else lambda band: then(band.reshape(-1, O))
        _banded(xp, 3, 1, H, W, products, write, per_pixel)
        return out

    def _scatter(self, x: np.ndarray) -> np.ndarray:
        """Output pixel (2 m + a, 2 n + b) gets input pixel (m + di, n + dj) through tap
        (a + 2 - 2 di, b + 2 - 2 dj): every tap's plane (one product for all of them, planes
        contiguous) is added, shifted, into the buffer of its output phase, then the four phases
        are interleaved."""
        H, W, C = x.shape
        O = self.bias.size
        planes = (self.matrices[0] @ x.reshape(-1, C).T).reshape(5, 5, O, H, W)
        phases = np.zeros((2, 2, O, H + 2, W + 2), self.bias.dtype)  # a frame of 1 for the shifts
        for ty in range(5):
            a, di = ty % 2, (ty % 2 + 2 - ty) // 2
            for tx in range(5):
                b, dj = tx % 2, (tx % 2 + 2 - tx) // 2
                phases[a, b, :, 1 - di : 1 - di + H, 1 - dj : 1 - dj + W] += planes[ty, tx]
        out = phases[:, :, :, 1 : H + 1, 1 : W + 1].transpose(3, 0, 4, 1, 2).reshape(2 * H, 2 * W, O)
        out += self.bias
        return out


@dataclass(frozen=True)
class GDN:
    """y = x / sqrt(beta + gamma x^2) (or * for IGDN; |x| and no root when simplified)."""

    gamma_t: np.ndarray  # (C, C), transposed for x @ gamma_t
    beta: np.ndarray
    inverse: bool
    simplified: bool

    @staticmethod
    def of(beta: np.ndarray, gamma: np.ndarray, inverse: bool, simplified: bool) -> GDN:
        beta = np.maximum(beta.astype(np.float32), np.float32(1e-6))  # the bounds layers.GDN applies
        gamma = np.maximum(gamma.astype(np.float32), np.float32(0.0))
        return GDN(np.ascontiguousarray(gamma.T), beta, inverse, simplified)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        self.inplace(out.reshape(-1, x.shape[-1]))
        return out

    def inplace(self, flat: np.ndarray, chunk: int = 4096) -> None:
        """GDN of rows (P, C), written over them, `chunk` rows at a time (cache-sized)."""
        for r0 in range(0, flat.shape[0], chunk):
            x = flat[r0 : r0 + chunk]
            norm = np.matmul(np.abs(x) if self.simplified else np.square(x), self.gamma_t)
            norm += self.beta
            if not self.simplified:
                np.sqrt(norm, out=norm)
            if self.inverse:
                x *= norm
            else:
                x /= norm


def leaky_relu(x: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(x >= 0, x, x * np.float32(slope))


NOISE_REF = 50.0  # as model.NOISE_REF: noise levels on the 0..255 scale, 50 maps to 1


class Transforms:
    """g_a, h_a and g_s of a weights file's float state, in numpy (the model is model.py's).

    Arrays are channels-last: pixels (H, W, 3) in [0, 1], latents (h, w, C)."""

    def __init__(self, config, state: dict[str, np.ndarray]):
        self.config = config
        f32 = {k: v.astype(np.float32) for k, v in state.items()}
        simple = config.simplified_gdn
        self.g_a = [Conv.of(f32[f"g_a.{i}.weight"], f32[f"g_a.{i}.bias"], 2) for i in (0, 2, 4, 6)]
        self.g_a_gdn = [GDN.of(f32[f"g_a.{i}.beta"], f32[f"g_a.{i}.gamma"], False, simple) for i in (1, 3, 5)]
        self.g_s = [Deconv.of(f32[f"g_s.{i}.weight"], f32[f"g_s.{i}.bias"]) for i in (0, 2, 4, 6)]
        self.g_s_gdn = [GDN.of(f32[f"g_s.{i}.beta"], f32[f"g_s.{i}.gamma"], True, simple) for i in (1, 3, 5)]
        self.h_a = [Conv.of(f32["h_a.0.weight"], f32["h_a.0.bias"], 1),
                    Conv.of(f32["h_a.2.weight"], f32["h_a.2.bias"], 2),
                    Conv.of(f32["h_a.4.weight"], f32["h_a.4.bias"], 2)]
        self.log_gain, self.log_inverse_gain = f32["log_gain"], f32["log_inverse_gain"]
        self.noise_film = (f32["noise_scale"], f32["noise_shift"]) if config.denoise else None
        self.quality_film = (f32["quality_scale"], f32["quality_shift"]) if config.quality_conditioned else None

    def _at_anchors(self, table: np.ndarray, t: float) -> np.ndarray:
        """A per-anchor table at quality axis t, interpolated linearly (HyperpriorModel._at_anchors)."""
        pos = np.float32(min(max(t, 0.0), 1.0)) * np.float32(self.config.anchors - 1)
        i = min(int(np.floor(pos)), self.config.anchors - 2)
        f = pos - np.float32(i)
        return (np.float32(1) - f) * table[i] + f * table[i + 1]

    def gain(self, t: float) -> np.ndarray:
        """The gain vector (M,) at quality axis t: y' = y * gain."""
        return np.exp(self._at_anchors(self.log_gain, t))

    def inverse_gain(self, t: float) -> np.ndarray:
        return np.exp(self._at_anchors(self.log_inverse_gain, t))

    def _film(self, noise: float, t: float | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(scale, shift) per stage (3, A) of g_a's conditioning, or None when there is none."""
        log_scale: np.ndarray | None = None
        shift: np.ndarray | None = None
        if noise and self.noise_film is not None:
            s = np.float32(noise / NOISE_REF)
            log_scale, shift = self.noise_film[0] * s, self.noise_film[1] * s
        if t is not None and self.quality_film is not None:
            q_scale, q_shift = (self._at_anchors(table, t) for table in self.quality_film)
            log_scale = q_scale if log_scale is None else log_scale + q_scale
            shift = q_shift if shift is None else shift + q_shift
        if log_scale is None or shift is None:
            return None
        return np.exp(log_scale), shift

    def analysis(self, x: np.ndarray, noise: float = 0.0, t: float | None = None) -> np.ndarray:
        """g_a: pixels (H, W, 3) in [0, 1], H and W multiples of 16 -> y (H/16, W/16, M).
        Each layer writes its output inside the zero frame the next one pads with, and the
        conditioning and GDN run on each band of output rows while it is in cache."""
        film = self._film(noise, t)
        padded = False
        for k, conv in enumerate(self.g_a[:3]):
            gdn = self.g_a_gdn[k].inplace
            then = gdn if film is None else _film_then(film[0][k], film[1][k], gdn)
            x = conv(x, then=then, padded=padded, frame=self.g_a[k + 1].kernel // 2)
            padded = True
        return self.g_a[3](x, padded=padded)

    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        """Gained y' (h, w, M) -> z_hat, int64 (N, ceil(h/4), ceil(w/4))."""
        z = self.h_a[2](leaky_relu(self.h_a[1](leaky_relu(self.h_a[0](y)))))
        return np.round(z).astype(np.int64).transpose(2, 0, 1)

    def synthesis(self, y_hat: np.ndarray, t: float) -> np.ndarray:
        """g_s: gained y_hat' (h, w, M) -> pixels (16 h, 16 w, 3) in [0, 1]. Each layer writes
        its output inside the zero frame the next one pads with (the last, col2im, pads none)."""
        x = y_hat * self.inverse_gain(t)
        padded = False
        for k, deconv in enumerate(self.g_s[:3]):
            frame = 0 if self.g_s[k + 1].scatter else 1
            x = deconv(x, then=self.g_s_gdn[k].inplace, padded=padded, frame=frame)
            padded = frame == 1
        x = self.g_s[3](x, padded=padded)
        return np.clip(x, 0, 1, out=x)


def _film_then(scale: np.ndarray, shift: np.ndarray, then: PerPixel) -> PerPixel:
    """Per pixel: x * scale + shift (g_a's conditioning), then `then`."""

    def run(x: np.ndarray) -> None:
        x *= scale
        x += shift
        then(x)

    return run
