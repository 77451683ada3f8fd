"""Shared fixtures: a tiny random model (seconds to build) and small test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aecompress import codec, zoo
from aecompress.model import HyperpriorModel, ModelConfig, lambda_at, quality_to_t

GOLDEN = Path(__file__).parent / "golden"


def tiny_model_file(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    zoo.export(HyperpriorModel(ModelConfig(N=8, M=12)), path, "tiny-test")
    return path


def tiny_context_model_file(path: Path, seed: int = 0, slices: int = 1, non_anchor_slices: int = 1,
                            window: int = 3) -> Path:
    """A tiny model with a context model that does something: its last layers are not left at zero."""
    torch.manual_seed(seed)
    net = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=slices,
                                      non_anchor_slices=non_anchor_slices, context_window=window))
    with torch.no_grad():
        for part in (net.context, *net.context.slices, *net.context.non_anchor_slices):
            part.out.weight.normal_(0, 0.02)
            part.out.bias.normal_(0, 0.5)
    zoo.export(net, path, "tiny-context-test")
    return path


TINY_MODEL = str(GOLDEN / "tiny.pt")  # the golden files' tiny model, as a --model path for the CLI


@pytest.fixture()
def png(tmp_path) -> Path:
    """A small photo-like PNG on disk (48x80)."""
    from PIL import Image

    path = tmp_path / "in.png"
    Image.fromarray(smooth_image(48, 80)).save(path)
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> zoo.CodingModel:
    return zoo.load_file(tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.pt"))


@pytest.fixture(scope="session")
def golden_model() -> zoo.CodingModel:
    return zoo.load_file(GOLDEN / "tiny.pt")


GOLDEN_MODELS = json.loads((GOLDEN / "models.json").read_text())  # file-name prefix -> the model it was written with


def golden_model_for(name: str) -> zoo.CodingModel:
    """The model a golden file was written with: context_*, groups_* and nonanchor_* files use
    the context models (groups_: anchors in channel groups; nonanchor_: the other positions
    too), the others tiny.pt."""
    model = next((m for prefix, m in GOLDEN_MODELS["by_prefix"].items() if name.startswith(prefix)),
                 GOLDEN_MODELS["default"])
    return zoo.load(str(GOLDEN / model))


def rd_cost(model: zoo.CodingModel, rgb: np.ndarray, data: bytes, quality: float) -> float:
    """lambda * 255^2 * MSE + bpp of a real file: what the encoder search (--effort) lowers."""
    back = np.asarray(codec.decode(data, model=model))
    assert back.shape == rgb.shape
    mse = np.mean((back.astype(np.float64) - rgb) ** 2) / 255**2
    lam = float(lambda_at(model.config, torch.tensor(quality_to_t(quality))))
    return lam * 255**2 * mse + len(data) * 8 / (rgb.shape[0] * rgb.shape[1])


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like test image: smooth gradients, an edge and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w, 1)
    base = np.stack([np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in (0.0, 1.0, 2.0)], -1)
    img = 128 + 90 * base + 20 * (xx > 0.5)[..., None] + rng.normal(0, 4, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)
