"""Every training default in one block (`TrainConfig`), and checkpoints that hold it."""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..model import ModelConfig


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
    eval_dir: str = ""  # a folder of held-out photos to evaluate on; none by default (Kodak is the benchmark's)
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


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def save_checkpoint(path: Path, cfg: TrainConfig, model, optimizer, step: int, sampler,
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
