"""Training: one model for every quality, resumable, on a CPU or on GPUs under torchrun.

    loss = lambda(t) * 255**2 * MSE + bpp,   t ~ U[0, 1] per crop (the quality axis)

A denoising model sees a share of its crops with synthetic noise (Gaussian or Poisson-Gaussian,
level ~ U[0, 50] on the 0..255 scale) and the level as a condition; the MSE is always taken
against the clean crop. There is no auxiliary loss: the support of each z table is found at
export by scanning the learned CDF (`entropy.factorized_tables`). `init` starts a new run from
another run's checkpoint or a weights file (another lambda range, with or without denoising, a
wider latent y, a context model): a new learning-rate cycle. With `context_only` only the
context model learns, on the rate alone (g_s never runs): it is added to a trained model and
leaves everything else exactly as it was; with `latent_reuse` it also skips most runs of g_a,
drawing stored latents again (`LatentPool`). With `encoder_only` only the encoder side learns
(g_a, h_a, the gains and the noise and quality conditioning), on the full RD loss: the decoder
and every table it reads stay bit-identical, so g_a can catch up with an entropy model that
changed after it was trained (a context model added later), at no risk to the decoder. With
`inverse_gains` as well, the decoder's inverse gains learn too (one vector per anchor, no
table), which a new lambda range needs: every quality then means another trade-off. With
`decoder_only` the mirror image: only g_s and the inverse gains learn, on the distortion of
the latents the frozen encoder and entropy model really code (the rate cannot move), so a g_s
widened with `width` learns to make more of the same bits.

Every default lives in `TrainConfig`. A checkpoint holds the config, model, optimizer, step
and RNG states, so `--resume` continues the same run. Under `torchrun --nproc-per-node N`
the model is wrapped in DistributedDataParallel and each rank draws its own crops.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image

from .entropy import scale_from_index
from .layers import GDN
from .model import HyperpriorModel, ModelConfig, lambda_at

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class TrainConfig:
    data: str = "../shared/data/train"
    out: str = "runs/main"
    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 20000
    batch: int = 8
    crop: int = 128
    min_downscale: float = 0.4  # crops are taken at a random scale in [this, 1]
    lr: float = 7e-4
    warmup: int = 500
    decay_from: float = 0.7  # the learning rate decays (cosine) over the last 30% of steps
    final_lr_ratio: float = 0.02
    clip: float = 1.0
    quality_power: float = 1.0  # quality axis t = u**this, u ~ U[0, 1]: below 1, high rates more often
    finetune: int = 1500  # last steps: g_a, g_s frozen, rates from rounded z (integer path QAT)
    autocast: bool | None = None  # bf16 autocast; None: where it is fast (see bf16_is_fast)
    eval_dir: str = "../shared/data/kodak"
    eval_images: int = 6
    eval_every: int = 500
    checkpoint_minutes: float = 3.0
    seed: int = 0
    noise_share: float = 0.3  # share of noisy crops, for a denoising model
    noise_max: float = 50.0  # noise levels ~ U[0, this], 0..255 scale
    init: str = ""  # a checkpoint or weights file to start from (fresh optimizer and schedule)
    uncharged_from: int = 0  # with uncharged_steps: channels of y from this one on ...
    uncharged_steps: int = 0  # ... cost no bits in the first steps (a widened latent learns first)
    context_only: bool = False  # only the context model learns, on rates alone; the rest stays as it is
    encoder_only: bool = False  # only g_a, h_a, the gains and the conditioning learn; the decoder stays as it is
    inverse_gains: bool = False  # encoder_only: the decoder's inverse gains learn too (for a new lambda range)
    decoder_only: bool = False  # only g_s and the inverse gains learn: every file's bits stay exactly as they were
    latent_reuse: int = 1  # context_only: draw each crop's latents this many times on average (see LatentPool)
    latent_pool: int = 1024  # ... from a ring of this many

    @staticmethod
    def smoke(**overrides) -> "TrainConfig":
        """A tiny run for tests: seconds on a laptop."""
        small = ModelConfig(N=8, M=12, levels=64)
        base = TrainConfig(model=small, steps=4, batch=2, crop=64, warmup=2, eval_every=0, finetune=1)
        return replace(base, **overrides)


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


def _remap_gains(old: torch.Tensor, old_cfg: ModelConfig, new_cfg: ModelConfig) -> torch.Tensor:
    """Anchor gains of one lambda range re-read at the lambdas of another (log-linear,
    extrapolated beyond the old ends). The same range and anchors give the gains back exactly."""
    if (old_cfg.lambda_min, old_cfg.lambda_max, old_cfg.anchors) == (new_cfg.lambda_min, new_cfg.lambda_max,
                                                                     new_cfg.anchors):
        return old.clone()
    t = torch.linspace(0, 1, new_cfg.anchors)
    lo, hi = math.log(old_cfg.lambda_min), math.log(old_cfg.lambda_max)
    pos = (torch.log(lambda_at(new_cfg, t)) - lo) / (hi - lo) * (old_cfg.anchors - 1)
    i = pos.floor().long().clamp(0, old_cfg.anchors - 2)
    f = (pos - i).reshape(-1, *[1] * (old.dim() - 1))
    return (1 - f) * old[i] + f * old[i + 1]


def widen_latent(state: dict, old_M: int, model: HyperpriorModel) -> dict:
    """A trained state with `old_M` channels of y, grown to the model's wider M.

    The grown model first reconstructs exactly what the trained one did: g_s and h_a read the
    new channels with zero weights. The new channels still carry information from the start,
    or training could never find a use for them (a channel that always rounds to zero passes
    no gradient to g_s): g_a's new filters are random with the norm of the trained ones, their
    gains are the mean of the trained gains at each quality, and h_s gives them mean 0 and the
    table of unit scale. Training then puts them to use where the trained channels ran out, at
    high rates, and silences them where they do not pay for their bits.
    """
    M, levels, fresh = model.config.M, model.config.levels, model.state_dict()
    state = dict(state)

    def grown(key: str, dim: int, new_part: torch.Tensor) -> torch.Tensor:
        return torch.cat([state[key], new_part], dim=dim)

    trained, blank = state["g_a.6.weight"], fresh["g_a.6.weight"][old_M:]
    norm = trained.flatten(1).norm(dim=1).mean() / blank.flatten(1).norm(dim=1).mean()
    state["g_a.6.weight"] = grown("g_a.6.weight", 0, norm * blank)
    state["g_a.6.bias"] = grown("g_a.6.bias", 0, torch.zeros(M - old_M))
    state["g_s.0.weight"] = grown("g_s.0.weight", 0, torch.zeros_like(fresh["g_s.0.weight"][old_M:]))
    state["h_a.0.weight"] = grown("h_a.0.weight", 1, torch.zeros_like(fresh["h_a.0.weight"][:, old_M:]))
    for key in ("log_gain", "log_inverse_gain"):
        mean = state[key].mean(dim=1, keepdim=True)
        state[key] = grown(key, 1, mean.expand(-1, M - old_M))
    w, b = state["h_s.layers.2.weight"], state["h_s.layers.2.bias"]  # rows: [index (M), mean (M)]
    w_new = torch.zeros_like(w[: M - old_M])
    unit = (scale_from_index(torch.arange(levels), levels) - 1).abs().argmin()
    b_index = torch.full((M - old_M,), float(unit))
    state["h_s.layers.2.weight"] = torch.cat([w[:old_M], w_new, w[old_M:], w_new])
    state["h_s.layers.2.bias"] = torch.cat([b[:old_M], b_index, b[old_M:], torch.zeros(M - old_M)])
    return state


def _mean_filter_norm(weight: torch.Tensor, out_dim: int) -> torch.Tensor:
    return weight.transpose(0, out_dim).flatten(1).norm(dim=1).mean()


def widen_transforms(state: dict, old: ModelConfig, new: ModelConfig) -> dict:
    """A trained state of config `old` grown to the wider g_a and/or g_s of config `new`
    (`analysis_channels`, `transform_width`: channels between their layers).

    Net2Net-style (Chen, Goodfellow, Shlens, ICLR 2016), the grown model computes exactly what the
    trained one did: each layer reads the new channels of the layer before with zero weights,
    and the new channels' GDN terms (identity start) leave the trained channels' normalization
    alone. The new channels themselves compute from the start (fresh filters at the trained
    filters' mean norm), so the zero reads get gradients and training can put them to use.
    Growing g_a alone gives a stronger encoder for a decoder that stays exactly as it was.
    """
    model = HyperpriorModel(new)
    fresh, state = model.state_dict(), dict(state)
    grows = {"g_a": new.analysis_channels > old.analysis_channels, "g_s": new.transform_width > old.transform_width}
    for name, transform in (("g_a", model.g_a), ("g_s", model.g_s)):
        if not grows[name]:
            continue
        for i, layer in enumerate(transform):
            prefix = f"{name}.{i}."
            if isinstance(layer, GDN):
                for key in ("beta", "gamma"):
                    grown, trained = fresh[prefix + key].clone(), state[prefix + key]
                    grown[tuple(slice(0, n) for n in trained.shape)] = trained
                    state[prefix + key] = grown
                continue
            out_dim = 1 if isinstance(layer, torch.nn.ConvTranspose2d) else 0
            trained, grown = state[prefix + "weight"], fresh[prefix + "weight"].clone()
            n_out, n_in = trained.shape[out_dim], trained.shape[1 - out_dim]
            grown *= _mean_filter_norm(trained, out_dim) / _mean_filter_norm(grown, out_dim)
            old_rows = grown.narrow(out_dim, 0, n_out)
            old_rows.narrow(1 - out_dim, 0, n_in).copy_(trained)
            old_rows.narrow(1 - out_dim, n_in, grown.shape[1 - out_dim] - n_in).zero_()
            bias = torch.zeros_like(fresh[prefix + "bias"])
            bias[:n_out] = state[prefix + "bias"]
            state[prefix + "weight"], state[prefix + "bias"] = grown, bias
    for key in ("noise_scale", "noise_shift", "quality_scale", "quality_shift"):  # new channels: no FiLM at first
        if key in state and grows["g_a"]:
            grown = torch.zeros_like(fresh[key])
            grown[..., : state[key].shape[-1]] = state[key]
            state[key] = grown
    return state


def widen_window(state: dict, window: int) -> dict:
    """A trained context model's state with its CROSS network reading a wider window: the
    trained taps in the middle, zeros on the new ones, so the tables start exactly as they were."""
    state = dict(state)
    key = "context.anchors.weight"
    trained = state[key]
    margin = (window - trained.shape[-1]) // 2
    state[key] = torch.nn.functional.pad(trained, (margin,) * 4)
    return state


def load_source(source: str | Path) -> tuple[dict, ModelConfig, float]:
    """The weights, model config and training hours of a run's checkpoint or a weights file."""
    source = Path(source)
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such checkpoint or weights file")
    try:
        blob = load_checkpoint(source)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        raise ValueError(f"{source}: not a checkpoint or weights file ({e})") from None
    if "train_config" in blob:
        return blob["model"], config_from_dict(blob["train_config"]).model, float(blob["hours"])
    from . import zoo

    coding = zoo.load_file(source)
    return coding.net.state_dict(), coding.config, float(coding.metadata.get("hours") or 0.0)


def warm_start(model: HyperpriorModel, source: str | Path) -> float:
    """Load a related model's weights: same N; lambda range and denoising may differ, and M and
    the transform width may grow (see `widen_latent`, `widen_transforms`). Returns the training
    hours already spent on the source."""
    state, old_cfg, hours = load_source(source)
    new_cfg = model.config
    same = (old_cfg.N, old_cfg.levels, old_cfg.anchors, old_cfg.simplified_gdn) == (
        new_cfg.N, new_cfg.levels, new_cfg.anchors, new_cfg.simplified_gdn)
    narrower = (old_cfg.M > new_cfg.M or old_cfg.transform_width > new_cfg.transform_width
                or old_cfg.analysis_channels > new_cfg.analysis_channels)
    if not same or narrower:
        raise ValueError(f"{source}: {old_cfg} does not fit {new_cfg} (same N, levels, anchors "
                         "and GDN; M and the transform widths may only grow)")
    if old_cfg.context and (old_cfg.M, old_cfg.context) != (new_cfg.M, new_cfg.context):
        raise ValueError(f"{source}: its context model fits only M={old_cfg.M} with {old_cfg.context} "
                         "hidden channels; grow a model without one, then add one (--context-only)")
    for field, where in (("context_slices", "anchors"), ("non_anchor_slices", "other positions")):
        old, new = getattr(old_cfg, field), getattr(new_cfg, field)
        if old > 1 and old != new:
            raise ValueError(f"{source}: its context model codes the {where} in {old} channel groups, "
                             "which cannot be regrouped")
    if old_cfg.context and old_cfg.context_window > new_cfg.context_window:
        raise ValueError(f"{source}: its context model reads a {old_cfg.context_window}x{old_cfg.context_window} "
                         "window, which cannot shrink")
    state = {k: v.float() for k, v in state.items()}
    if old_cfg.context and old_cfg.context_window < new_cfg.context_window:
        state = widen_window(state, new_cfg.context_window)
    for key in ("log_gain", "log_inverse_gain", "quality_scale", "quality_shift"):  # tables per anchor
        if key in state:
            state[key] = _remap_gains(state[key], old_cfg, new_cfg)
    if (old_cfg.transform_width, old_cfg.analysis_channels) != (new_cfg.transform_width, new_cfg.analysis_channels):
        state = widen_transforms(state, old_cfg, replace(old_cfg, width=new_cfg.width,
                                                         analysis_width=new_cfg.analysis_width))
    if old_cfg.M < new_cfg.M:
        state = widen_latent(state, old_cfg.M, model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(("noise_", "quality_", "context.")) for k in missing):
        raise ValueError(f"{source}: does not fit the model ({missing + unexpected})")
    return hours


def learning_rate(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = int(cfg.decay_from * cfg.steps)
    if step < start:
        return cfg.lr
    progress = min(1.0, (step - start) / max(1, cfg.steps - start))
    ratio = cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * ratio


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 autocast pays on CUDA and on CPUs with native bf16 (AVX-512 BF16, AMX); elsewhere the
    CPU emulates it, several times slower than fp32 (5x measured on an AVX2 machine)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo) is not None


def rd_loss(model: HyperpriorModel, x: torch.Tensor, t: torch.Tensor, autocast: bool,
            noisy: torch.Tensor | None = None, level: torch.Tensor | None = None, rate_only: bool = False):
    """The RD loss of clean crops x; with `noisy` the model codes those instead (at `level`).
    With `rate_only` (nothing that shapes the pixels learns) the loss is the rate alone and
    the returned MSE is None."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        out = model(x if noisy is None else noisy, t, level, synthesize=not rate_only)
    bpp = (out.bits_y + out.bits_z) / (x.shape[-2] * x.shape[-1])
    if rate_only:
        return bpp.mean(), None, bpp.detach()
    mse = (out.x_hat - x).square().mean(dim=(1, 2, 3))
    config = model.module.config if hasattr(model, "module") else model.config
    loss = (lambda_at(config, t) * 255**2 * mse + bpp).mean()
    return loss, mse.detach(), bpp.detach()


def latent_rate_loss(model: HyperpriorModel, y: torch.Tensor, t: torch.Tensor, pixels: int):
    """The rate alone (bpp) of latents g_a already made (a LatentPool's), for a context-only run."""
    out = model(y, t, synthesize=False, encoded=True)
    bpp = (out.bits_y + out.bits_z) / pixels
    return bpp.mean(), None, bpp.detach()


@torch.no_grad()
def evaluate(model: HyperpriorModel, files: list[Path], qualities=(10, 50, 90)) -> dict:
    """Real coding: bpp of the encoded bytes and PSNR of the decoded pixels, averaged per image."""
    from . import codec, metrics, zoo

    model.eval()
    coding = zoo.freeze(model)
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    result = {}
    for q in qualities:
        bpp, psnr = [], []
        for rgb in images:
            data = codec.encode(rgb, q, model=coding)
            back = np.asarray(codec.decode(data, model=coding))
            psnr.append(metrics.psnr(rgb, back))
            bpp.append(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]))
        result[q] = {"bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr))}
    model.train()
    return result


def set_finetune(model: HyperpriorModel) -> None:
    """Final phase: freeze the pixel transforms and train the entropy path on rounded z, so
    the integer h_s and the factorized prior fit exactly what the coder will see."""
    encoder = [p for n, p in model.named_parameters() if n.startswith(("noise_", "quality_"))]
    for p in [*model.g_a.parameters(), *model.g_s.parameters(), *encoder]:
        p.requires_grad_(False)
    model.rate_from_rounded_z = True


def train_only(model: HyperpriorModel, prefixes: tuple[str, ...]) -> None:
    """Freeze every parameter whose name starts with none of these prefixes."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))


def set_context_only(model: HyperpriorModel) -> None:
    """Freeze everything but the context model: it learns on top of a trained hyperprior."""
    if not model.config.context:
        raise ValueError("context_only: the model has no context model (ModelConfig.context)")
    train_only(model, ("context.",))


ENCODER = ("g_a.", "h_a.", "noise_", "quality_", "log_gain")  # only the encoder reads these (not log_inverse_gain)
DECODER = ("g_s.", "log_inverse_gain")  # only the decoder's pixels depend on these


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def save_checkpoint(path: Path, cfg: TrainConfig, model, optimizer, step: int, sampler: CropSampler,
                    hours: float) -> None:
    state = {
        "train_config": asdict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "step": step, "hours": hours, "rng": _rng_state(), "sampler_rng": sampler.rng.bit_generator.state,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint or weights file, loaded without running any code from it (weights_only):
    tensors, plain containers and the numpy arrays of the RNG state only."""
    multiarray = np.core.multiarray if not hasattr(np, "_core") else np._core.multiarray
    allowed = [np.ndarray, np.dtype, multiarray._reconstruct, type(np.dtype(np.uint32))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["model"] = ModelConfig(**d["model"])
    return TrainConfig(**d)


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True,
          until: int | None = None) -> HyperpriorModel:
    """Run (or resume) training; `until` stops early at that step, checkpointed, as if interrupted."""
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    out = Path(cfg.out)
    ckpt_path = out / "checkpoint.pt"
    start_step, hours = 0, 0.0
    torch.manual_seed(cfg.seed)
    model = HyperpriorModel(cfg.model)
    optimizer_state = None
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        saved = config_from_dict(ckpt["train_config"])
        if saved.model != cfg.model:
            raise ValueError(f"{ckpt_path} holds a different model config: {saved.model}")
        model.load_state_dict(ckpt["model"])
        optimizer_state, start_step, hours = ckpt["optimizer"], ckpt["step"], ckpt["hours"]
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        random.setstate(ckpt["rng"]["python"])
    elif cfg.init:
        hours = warm_start(model, cfg.init)  # the hours keep counting from the source run
    if sum((cfg.context_only, cfg.encoder_only, cfg.decoder_only)) > 1:
        raise ValueError("context_only, encoder_only and decoder_only train disjoint parts: choose one")
    if cfg.latent_reuse > 1 and not cfg.context_only:
        raise ValueError("latent_reuse: stored latents hold only while g_a does not learn (context_only)")
    if cfg.latent_reuse > 1 and cfg.model.quality_conditioned:
        raise ValueError("latent_reuse: a quality-conditioned g_a makes other latents at every quality")
    if cfg.inverse_gains and not cfg.encoder_only:
        raise ValueError("inverse_gains: the inverse gains learn in every run but an encoder-only one anyway")
    if cfg.context_only:
        set_context_only(model)
    if cfg.encoder_only:  # the decoder side (g_s, h_s, the z prior, the context model) stays frozen
        train_only(model, ENCODER + (("log_inverse_gain",) if cfg.inverse_gains else ()))
    if cfg.decoder_only:  # the latents and their tables stay as they are: only distortion can move
        train_only(model, DECODER)
    model = model.to(device, memory_format=torch.channels_last)
    autocast = bf16_is_fast(device) if cfg.autocast is None else cfg.autocast
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    net = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    sampler = CropSampler(list_images(cfg.data), cfg.crop, cfg.min_downscale, cfg.seed + 1000 * rank)
    if resume and ckpt_path.exists():
        sampler.rng.bit_generator.state = ckpt["sampler_rng"]
        if rank:
            sampler.rng = np.random.default_rng([cfg.seed, rank, start_step])
    pool = LatentPool(cfg, model, sampler, rank, autocast, device, start_step) if cfg.latent_reuse > 1 else None
    eval_files = list_images(cfg.eval_dir)[: cfg.eval_images] if cfg.eval_every and rank == 0 else []
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)
    log = (out / "log.jsonl").open("a") if rank == 0 else None
    last_save, t_start, skipped = time.time(), time.time(), 0
    last = cfg.steps if until is None else min(until, cfg.steps)
    for step in range(start_step, last):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        model.uncharged_from = cfg.uncharged_from if step < cfg.uncharged_steps else None
        if step == max(start_step, cfg.steps - cfg.finetune) and not (cfg.encoder_only or cfg.decoder_only):
            set_finetune(model)
            if distributed:  # DDP must learn which parameters still take gradients
                net = torch.nn.parallel.DistributedDataParallel(model)
        t = torch.rand(cfg.batch, device=device) ** cfg.quality_power
        if pool is not None:
            loss, mse, bpp = latent_rate_loss(net, pool.batch(), t, cfg.crop**2)
        else:
            x = sampler.batch(cfg.batch).to(device, memory_format=torch.channels_last)
            noisy = level = None
            if cfg.model.denoise:
                level = noise_levels(cfg, cfg.batch, device)
                noisy = torch.where((level > 0)[:, None, None, None], add_noise(x, level), x)
            loss, mse, bpp = rd_loss(net, x, t, autocast, noisy, level, rate_only=cfg.context_only)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        if torch.isfinite(norm):
            optimizer.step()
        else:
            skipped += 1
        now = time.time()
        elapsed = hours + (now - t_start) / 3600
        if rank == 0:
            psnr = None if mse is None else float((-10 * torch.log10(mse)).mean())
            if bar is not None:
                shown = {} if psnr is None else {"psnr": f"{psnr:.2f}"}
                bar.set_postfix(loss=f"{loss.item():.3f}", bpp=f"{bpp.mean():.3f}", **shown)
                bar.update()
            if step % 50 == 0:
                log.write(json.dumps({"step": step, "hours": round(elapsed, 4), "loss": loss.item(),
                                      "bpp": float(bpp.mean()), "psnr": psnr, "lr": learning_rate(cfg, step),
                                      "skipped": skipped}) + "\n")
                log.flush()
            if eval_files and cfg.eval_every and (step + 1) % cfg.eval_every == 0:
                result = evaluate(model, eval_files)
                (out / "eval.jsonl").open("a").write(
                    json.dumps({"step": step + 1, "hours": round(elapsed, 4), "kodak": result}) + "\n")
            done = step + 1 == last
            if done or now - last_save > 60 * cfg.checkpoint_minutes:
                save_checkpoint(ckpt_path, cfg, model, optimizer, step + 1, sampler, elapsed)
                last_save = now
    if bar is not None:
        bar.close()
    if distributed:  # every rank done (rank 0 saves last) before any tears down its connections
        dist.barrier()
        dist.destroy_process_group()
    return model


def _frozen_integers(cfg: TrainConfig):
    """The --init weights file of an encoder-only run, whose integer h_s and context model the
    export keeps exactly (they did not train); None for any other run."""
    from . import zoo

    if not (cfg.encoder_only or cfg.decoder_only) or "train_config" in load_checkpoint(cfg.init):
        return None
    return zoo.load_file(cfg.init)


def export_run(model: HyperpriorModel, cfg: TrainConfig, name: str) -> Path:
    """Write weights/<name>.pt with what produced it, and list it in the manifest."""
    from . import zoo

    ckpt = Path(cfg.out) / "checkpoint.pt"
    progress = load_checkpoint(ckpt) if ckpt.exists() else {}
    metadata = {
        "training_data": str(cfg.data), "steps": progress.get("step"), "hours": progress.get("hours"),
        "lambda_range": [cfg.model.lambda_min, cfg.model.lambda_max],
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"},
    }
    path = zoo.WEIGHTS_DIR / f"{name}.pt"
    sha = zoo.export(model, path, name, metadata, integers=_frozen_integers(cfg))
    zoo.register(path, sha)
    return path
