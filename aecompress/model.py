"""The model: a mean-scale hyperprior with an integer h_s and gain vectors for variable rate.

    x --g_a--> y --*gain(q)--> y' --h_a--> z --round--> z_hat --h_s (integer)--> index, mu
    y_hat' = round(y' - mu) + mu,   coded with the Gaussian table index[.]
    y_hat = y_hat' * inverse_gain(q) --g_s--> x_hat

With `denoise`, g_a also takes the noise level of its input: the output of each of its first
three convolutions is scaled and shifted per channel by learned multiples of the level (FiLM,
zero at level 0), and training pairs noisy inputs with clean targets. Only the encoder
changes, so a denoised file needs nothing new to decode.

With `context`, a checkerboard context model (context.py) refines index and mu at half of the
positions from the decoded other half: y is then coded in two passes. With `context_slices`,
the anchors are coded in that many channel groups, each refined by the groups before it; with
`non_anchor_slices`, likewise the other positions; `context_window` 5 lets the other positions
read the anchors of a 5x5 window rather than their four neighbours.

With `analysis_width`, g_a has more channels than g_s: the encoder is the codec's to make as
strong as it likes, since it only chooses the latents; the decoder, and what it costs, stay.
With `quality_conditioned`, g_a also takes the quality, by the same FiLM of its first three
convolutions, learned per gain anchor and interpolated like the gains (zero: no change): a
gain alone scales one latent for every rate, while a high rate wants finer detail in it than a
low one. Again only the encoder changes; the codec makes y for qualities in steps of 5 (the
step at or below: codec.conditioning).

Minnen, Balle, Toderici, "Joint autoregressive and hierarchical priors", NeurIPS 2018 (the
mean-scale hyperprior, without the serial context model); Cui et al., "Asymmetric gained
deep image compression with continuous rate adaptation", CVPR 2021 (gain vectors, log-linear
interpolation between them for any quality in 1..100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import intnet
from .config import ModelConfig, quality_to_t
from .context import CheckerboardContext
from .entropy import FactorizedPrior, gaussian_likelihood, scale_from_index
from .layers import round_ste
from .transforms import g_a, g_s, h_a

NOISE_REF = 50.0  # noise levels are standard deviations on the 0..255 scale; 50 maps to 1


def lambda_at(config: ModelConfig, t: torch.Tensor) -> torch.Tensor:
    lo, hi = math.log(config.lambda_min), math.log(config.lambda_max)
    return torch.exp(lo + t * (hi - lo))


@dataclass(frozen=True)
class RDOutput:
    """One training forward pass: reconstruction and the bits the model expects to spend."""

    x_hat: torch.Tensor | None
    bits_y: torch.Tensor  # per image
    bits_z: torch.Tensor  # per image


class HyperpriorModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        N, M, W, A = config.N, config.M, config.transform_width, config.analysis_channels
        self.g_a = g_a(A, M, config.simplified_gdn)
        self.g_s = g_s(W, M, config.simplified_gdn)
        self.h_a = h_a(N, M)
        self.h_s = intnet.IntegerHyperSynthesis(N, M, config.levels)
        self.z_prior = FactorizedPrior(N)
        if config.context:
            self.context = CheckerboardContext(M, config.context, config.levels, config.context_slices,
                                               config.non_anchor_slices, config.context_window)
        self.rate_from_rounded_z = False  # set for the final fine-tune of the entropy path
        self.uncharged_from: int | None = None  # channels of y from here on cost no bits (training)
        # Gain vectors start at the step sizes high-rate theory suggests (step ~ 1/sqrt(lambda)).
        t = torch.linspace(0, 1, config.anchors)
        log_gain = 0.5 * (torch.log(lambda_at(config, t)) - math.log(lambda_at(config, torch.tensor(0.5))))
        self.log_gain = nn.Parameter(log_gain[:, None].repeat(1, M))
        self.log_inverse_gain = nn.Parameter(-log_gain[:, None].repeat(1, M))
        if config.denoise:  # (stage, channel) FiLM of g_a's first three convolutions
            self.noise_scale = nn.Parameter(torch.zeros(3, A))
            self.noise_shift = nn.Parameter(torch.zeros(3, A))
        if config.quality_conditioned:  # (anchor, stage, channel), likewise
            self.quality_scale = nn.Parameter(torch.zeros(config.anchors, 3, A))
            self.quality_shift = nn.Parameter(torch.zeros(config.anchors, 3, A))

    def encode_pixels(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                      t: torch.Tensor | None = None) -> torch.Tensor:
        """g_a, conditioned on the noise level (B,) on the 0..255 scale when the model denoises,
        and on the quality axis t (B,) when it is quality-conditioned."""
        log_scale = shift = None  # (B, 3, A): per stage, the FiLM of each channel
        if noise is not None and self.config.denoise:
            s = (noise.to(x.device, torch.float32) / NOISE_REF)[:, None, None]
            log_scale, shift = self.noise_scale * s, self.noise_shift * s
        if t is not None and self.config.quality_conditioned:
            q_scale, q_shift = self._at_anchors(self.quality_scale, t), self._at_anchors(self.quality_shift, t)
            log_scale = q_scale if log_scale is None else log_scale + q_scale
            shift = q_shift if shift is None else shift + q_shift
        if log_scale is None:
            return self.g_a(x)
        for i, layer in enumerate(self.g_a):
            x = layer(x)
            if i in (0, 2, 4):
                k = i // 2
                scale = torch.exp(log_scale[:, k, :, None, None]).to(x.dtype)
                x = torch.addcmul(shift[:, k, :, None, None].to(x.dtype), x, scale)  # one new activation, not two
        return x

    def _at_anchors(self, table: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A per-anchor table (anchors, ...) at the qualities t (B,), interpolated linearly
        (log-linearly for the log tables it is used with)."""
        pos = t.float().clamp(0, 1) * (self.config.anchors - 1)
        i = pos.floor().long().clamp(max=self.config.anchors - 2)
        f = (pos - i).reshape(-1, *[1] * (table.dim() - 1))
        return (1 - f) * table[i] + f * table[i + 1]

    def gains(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain and inverse gain, (B, M, 1, 1), interpolated log-linearly between anchors."""
        g, gi = self._at_anchors(self.log_gain, t), self._at_anchors(self.log_inverse_gain, t)
        return g.exp()[..., None, None], gi.exp()[..., None, None]

    def forward(self, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                synthesize: bool = True, encoded: bool = False) -> RDOutput:
        """Training pass: noise for the rate terms, straight-through rounding for the decoder.

        In eval mode the rate terms use the rounded values instead, which is what coding spends.
        `noise` is the noise level of each input (B,), for a denoising model. Without
        `synthesize`, g_s is skipped and x_hat is None (training the entropy model alone).
        With `encoded`, x is already g_a's output (B, M, h, w), before any gain.
        """
        gain, inverse_gain = self.gains(t)
        y = (x if encoded else self.encode_pixels(x, noise, t)).float() * gain
        with torch.autocast(x.device.type, enabled=False):  # under bf16 autocast the entropy model stays fp32
            z = self.h_a(y)
            z_hat = round_ste(z)
            index, mean = self.h_s(z_hat, y.shape[-2:])
            if self.config.context:  # the tables refined from what is decoded before each latent
                index, mean = self.context(y, index, mean)
            sigma = scale_from_index(index, self.config.levels)
            residual = y - mean
            if self.training:
                y_rate = residual + torch.empty_like(residual).uniform_(-0.5, 0.5)
                z_rate = z_hat if self.rate_from_rounded_z else z + torch.empty_like(z).uniform_(-0.5, 0.5)
            else:
                y_rate, z_rate = torch.round(residual), z_hat
            bits_y = -torch.log2(gaussian_likelihood(y_rate, sigma))[:, : self.uncharged_from].sum(dim=(1, 2, 3))
            bits_z = -torch.log2(self.z_prior.likelihood(z_rate)).sum(dim=(1, 2, 3))
            y_hat = (round_ste(residual) + mean) * inverse_gain
        x_hat = self.g_s(y_hat).float() if synthesize else None
        return RDOutput(x_hat=x_hat, bits_y=bits_y, bits_z=bits_z)

    # Coding path: float transforms around the exact integer hyper-synthesis.

    @torch.no_grad()
    def gain(self, quality: float) -> torch.Tensor:
        """The gain vector (1, M, 1, 1) of a quality: y' = y * gain."""
        return self.gains(torch.tensor([quality_to_t(quality)]))[0].cpu()

    @torch.no_grad()
    def analysis(self, x: torch.Tensor, noise: float = 0.0, quality: float | None = None) -> torch.Tensor:
        """x (1, 3, H, W) in [0, 1], H and W multiples of 16 -> latent y (before any gain).

        Unless the model is quality-conditioned, y does not depend on the quality (which may
        then be None), so rate control runs g_a only once. `noise` is the level to remove
        (0..255 scale), for a denoising model."""
        if self.config.quality_conditioned and quality is None:
            raise ValueError("a quality-conditioned g_a needs the quality")
        level = torch.tensor([float(noise)]) if noise else None
        t = None if quality is None else torch.tensor([quality_to_t(quality)], device=x.device)
        return self.encode_pixels(x, level, t).float()

    @torch.no_grad()
    def hyper_analysis(self, y: torch.Tensor) -> np.ndarray:
        """Gained y' (1, M, h, w) -> z_hat, int64 (N, ceil(h/4), ceil(w/4))."""
        return torch.round(self.h_a(y).float())[0].cpu().numpy().astype(np.int64)

    @torch.no_grad()
    def synthesize(self, y_hat_gained: torch.Tensor, quality: float) -> torch.Tensor:
        t = torch.tensor([quality_to_t(quality)], device=y_hat_gained.device)
        _, inverse_gain = self.gains(t)
        return self.g_s(y_hat_gained * inverse_gain).clamp_(0, 1)


class TorchTransforms:
    """A network's g_a, h_a and g_s on a torch device, with the interface of npnet.Transforms
    (channels-last numpy arrays in and out): for CUDA, and for the encoder search."""

    def __init__(self, net: HyperpriorModel, device: torch.device):
        self.net, self.device, self.config = net.to(device), device, net.config

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].to(
            self.device, memory_format=torch.channels_last)

    @staticmethod
    def _array(x: torch.Tensor) -> np.ndarray:
        return x[0].permute(1, 2, 0).float().cpu().numpy()

    @torch.no_grad()
    def gain(self, t: float) -> np.ndarray:
        return self.net.gains(torch.tensor([t], device=self.device))[0].flatten().cpu().numpy()

    @torch.no_grad()
    def analysis(self, x: np.ndarray, noise: float = 0.0, t: float | None = None) -> np.ndarray:
        level = torch.tensor([float(noise)]) if noise else None
        t = None if t is None else torch.tensor([t], device=self.device)
        return self._array(self.net.encode_pixels(self._tensor(x), level, t))

    @torch.no_grad()
    def hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        z = torch.round(self.net.h_a(self._tensor(y)).float())
        return z[0].cpu().numpy().astype(np.int64)

    @torch.no_grad()
    def synthesis(self, y_hat: np.ndarray, t: float) -> np.ndarray:
        inverse_gain = self.net.gains(torch.tensor([t], device=self.device))[1]
        return self._array(self.net.g_s(self._tensor(y_hat) * inverse_gain).clamp_(0, 1))
