"""A finished run -> a weights file listed in the manifest."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..model import HyperpriorModel
from .config import TrainConfig, load_checkpoint


def _frozen_integers(cfg: TrainConfig):
    """The --init weights file of an encoder-only run, whose integer h_s and context model the
    export keeps exactly (they did not train); None for any other run."""
    from .. import zoo

    if not (cfg.encoder_only or cfg.decoder_only) or "train_config" in load_checkpoint(cfg.init):
        return None
    return zoo.load_file(cfg.init)


def export_run(model: HyperpriorModel, cfg: TrainConfig, name: str) -> Path:
    """Write weights/<name>.pt with what produced it, and list it in the manifest."""
    from .. import zoo

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
