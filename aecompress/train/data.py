"""Training data: random crops of the photos at random scales, synthetic noise, and stored latents."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..model import HyperpriorModel
from .config import TrainConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files


class CropSampler:
    """Random crops at a random scale with flips. Images are drawn uniformly, so the many
    small photos and the few large ones each get their share (not one per pixel)."""

    def __init__(self, files: list[Path], crop: int, min_downscale: float, seed: int):
        self.images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        self.images = [im for im in self.images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no training image is at least {crop}x{crop}")
        self.crop, self.min_downscale = crop, min_downscale
        self.rng = np.random.default_rng(seed)

    def sample(self, rng: np.random.Generator | None = None) -> torch.Tensor:
        """One crop (3, crop, crop) in [0, 1], drawn with `rng` (default: the sampler's own)."""
        rng = self.rng if rng is None else rng
        im = self.images[rng.integers(len(self.images))]
        h, w = im.shape[:2]
        lo = max(self.min_downscale, self.crop / min(h, w))
        size = int(round(self.crop / rng.uniform(lo, 1.0))) if lo < 1 else self.crop
        size = min(size, h, w)
        top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
        x = torch.from_numpy(np.array(im[top : top + size, left : left + size]))
        x = x.permute(2, 0, 1)[None].float() / 255
        if size != self.crop:
            x = F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", antialias=True,
                              align_corners=False).clamp_(0, 1)
        if rng.random() < 0.5:
            x = x.flip(-1)
        return x[0]

    def batch(self, n: int) -> torch.Tensor:
        return torch.stack([self.sample() for _ in range(n)])


def add_noise(x: torch.Tensor, level: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Camera-like noise of std `level` (B,) at mid-grey, 0..255 scale: half of the batch
    Gaussian, half Poisson-Gaussian (variance a*x + b with a random signal-dependent share),
    clipped and stored in 8 bits as a noisy photo would be."""
    var = (level / 255)[:, None, None, None] ** 2
    draw = dict(generator=generator, device=x.device)
    share = torch.rand(len(x), 1, 1, 1, **draw) * (torch.rand(len(x), 1, 1, 1, **draw) < 0.5)
    std = (var * (2 * share * x + (1 - share))).sqrt()
    noisy = (x + std * torch.randn(x.shape, dtype=x.dtype, **draw)).clamp(0, 1)
    return torch.round(noisy * 255) / 255


def noise_levels(cfg: TrainConfig, n: int, device: torch.device,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Noise levels (n,) for a denoising model's crops: a `noise_share` of them noisy, at U[0, noise_max]."""
    level = torch.rand(n, generator=generator, device=device) * cfg.noise_max
    return level * (torch.rand(n, generator=generator, device=device) < cfg.noise_share)


class LatentPool:
    """g_a's outputs for training crops, each drawn `latent_reuse` times on average: for a
    context-only run, whose loss needs only y = g_a(x) and whose g_a never changes, while
    g_a costs most of a step.

    The pool keeps the latest `latent_pool` latents in a ring. Every step encodes
    ceil(batch / latent_reuse) fresh crops into it and draws the batch from the ring, fresh
    ones first. Crop k, and its noise, comes from a seed of its own, so a resumed run rebuilds
    the ring it had and goes on exactly as if it had not stopped.
    """

    def __init__(self, cfg: TrainConfig, model: HyperpriorModel, sampler: CropSampler, rank: int,
                 autocast: bool, device: torch.device, start_step: int = 0):
        self.cfg, self.model, self.sampler, self.rank = cfg, model, sampler, rank
        self.autocast, self.device = autocast, device
        self.fresh = math.ceil(cfg.batch / cfg.latent_reuse)
        self.size = max(cfg.latent_pool, cfg.batch)
        self.ring: list[torch.Tensor | None] = [None] * self.size
        self.made = self.fresh * start_step  # crops encoded so far
        for k in range(max(0, self.made - self.size), self.made):
            self.ring[k % self.size] = self._encode(k)

    @torch.no_grad()
    def _encode(self, k: int) -> torch.Tensor:
        seed = [self.cfg.seed, self.rank, k]
        x = self.sampler.sample(np.random.default_rng(seed))[None].to(self.device, memory_format=torch.channels_last)
        level = None
        if self.cfg.model.denoise:
            generator = torch.Generator(self.device).manual_seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
            level = noise_levels(self.cfg, 1, self.device, generator)
            if level.item() > 0:
                x = add_noise(x, level, generator)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.model.encode_pixels(x, level)[0]

    def batch(self) -> torch.Tensor:
        """The next batch of latents (batch, M, crop / 16, crop / 16), before any gain."""
        new = [self.made + i for i in range(self.fresh)]
        for k in new:
            self.ring[k % self.size] = self._encode(k)
        self.made += self.fresh
        filled = min(self.made, self.size)
        drawn = torch.randint(filled, (self.cfg.batch - self.fresh,)).tolist()
        slots = [k % self.size for k in new] + drawn
        return torch.stack([self.ring[s] for s in slots]).float()
