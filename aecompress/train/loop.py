"""The training loop: losses, the learning-rate schedule, what learns, evaluation, DDP."""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image

from ..model import HyperpriorModel, lambda_at
from .config import TrainConfig, config_from_dict, load_checkpoint, save_checkpoint
from .data import CropSampler, LatentPool, add_noise, list_images, noise_levels
from .grow import warm_start


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
    from .. import codec, metrics, zoo

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
    eval_files = list_images(cfg.eval_dir)[: cfg.eval_images] if cfg.eval_dir and cfg.eval_every and rank == 0 else []
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
                    json.dumps({"step": step + 1, "hours": round(elapsed, 4), "eval": result}) + "\n")
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
