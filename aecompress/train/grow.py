"""Warm starts: a trained model grown (wider transforms, a wider y, a wider context window) so
that it starts out computing exactly what it did."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace
from pathlib import Path

import torch

from ..entropy import scale_from_index
from ..layers import GDN
from ..model import HyperpriorModel, ModelConfig, lambda_at
from .config import config_from_dict, load_checkpoint


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
    from .. import zoo

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
