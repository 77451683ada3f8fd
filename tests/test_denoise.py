"""Denoising: an encoder-side option whose files decode like any other."""

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from aecompress import codec, container, zoo
from aecompress.cli import main
from aecompress.model import HyperpriorModel, ModelConfig
from aecompress.train import TrainConfig, _remap_gains, add_noise, train, warm_start

from conftest import GOLDEN, smooth_image

PLAIN = str(GOLDEN / "tiny.pt")


@pytest.fixture(scope="module")
def denoiser_file(tmp_path_factory):
    torch.manual_seed(1)
    net = HyperpriorModel(ModelConfig(N=8, M=12, denoise=True))
    with torch.no_grad():  # untrained FiLM parameters are zero: make the level matter
        net.noise_scale.normal_(0, 0.5)
        net.noise_shift.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("denoiser") / "tiny-denoise.pt"
    zoo.export(net, path, "tiny-denoise")
    return path


@pytest.fixture(scope="module")
def denoiser(denoiser_file):
    return zoo.load_file(denoiser_file)


def noisy_image(sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clean = smooth_image(64, 96, seed).astype(np.float64)
    return np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def test_denoised_file_decodes_without_knowing_and_records_the_level(denoiser):
    image = noisy_image(25)
    plain = codec.encode(image, 60, model=denoiser)
    denoised = codec.encode(image, 60, model=denoiser, denoise=25)
    assert denoised != plain
    level = container.unpack_noise_level(container.unpack(denoised).sections[container.DENOISE])
    assert level == 25
    assert container.DENOISE not in container.unpack(plain).sections
    back = np.asarray(codec.decode(denoised, model=denoiser))
    assert back.shape == image.shape


def test_level_zero_and_auto_on_a_clean_image_are_plain_encoding(denoiser):
    clean = smooth_image(64, 96)
    plain = codec.encode(clean, 60, model=denoiser)
    assert codec.encode(clean, 60, model=denoiser, denoise=0) == plain
    assert codec.noise_level(denoiser, clean, "auto") == 0
    assert codec.encode(clean, 60, model=denoiser, denoise="auto") == plain


def test_auto_estimates_strong_noise(denoiser):
    level = codec.noise_level(denoiser, noisy_image(30), "auto")
    assert 22 <= level <= 34  # sqrt(30**2 - floor**2) = 28.9, give or take the estimate


def test_a_model_without_denoising_refuses_clearly(tmp_path):
    png = tmp_path / "noisy.png"
    Image.fromarray(noisy_image(20)).save(png)
    r = CliRunner().invoke(main, ["encode", str(png), "--model", PLAIN, "--denoise", "20"])
    assert r.exit_code == 1
    assert "has no denoising encoder" in r.output
    assert not png.with_suffix(".aec").exists()


def test_cli_denoise_flag_and_denoise_command(denoiser_file, tmp_path):
    png = tmp_path / "noisy.png"
    Image.fromarray(noisy_image(30)).save(png)
    r = CliRunner().invoke(main, ["encode", str(png), "--model", str(denoiser_file), "--denoise"])
    assert r.exit_code == 0, r.output
    assert "denoised at level" in r.output
    r = CliRunner().invoke(main, ["info", str(png.with_suffix(".aec"))])
    assert "denoised at level" in r.output
    r = CliRunner().invoke(main, ["denoise", str(png), "--model", str(denoiser_file), "--level", "30"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "noisy-denoised.png"
    assert Image.open(out).size == (96, 64)
    r = CliRunner().invoke(main, ["encode", str(png), "--denoise", "80", "-f"])
    assert r.exit_code == 2 and "outside 0..50" in r.output


def test_denoise_command_leaves_a_clean_image_as_it_is(denoiser_file, tmp_path):
    png = tmp_path / "clean.png"
    Image.fromarray(smooth_image(64, 96)).save(png)
    r = CliRunner().invoke(main, ["denoise", str(png), "--model", str(denoiser_file), "-o", str(tmp_path / "o.png")])
    assert r.exit_code == 0 and "no noise to remove" in r.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), np.asarray(Image.open(png)))


def test_synthetic_noise_has_the_requested_level():
    torch.manual_seed(0)
    x = torch.full((64, 3, 32, 32), 0.5)
    level = torch.full((64,), 20.0)
    noisy = add_noise(x, level)
    std = float((noisy - x).std() * 255)
    assert 18.5 < std < 21.5
    assert torch.equal(noisy, torch.round(noisy * 255) / 255)  # stored in 8 bits


def test_gains_are_remapped_to_a_new_lambda_range():
    old = ModelConfig(N=8, M=12, lambda_min=0.0018, lambda_max=0.18)
    new = dataclasses.replace(old, lambda_min=0.0018 / 10, lambda_max=0.18)
    gains = torch.arange(8.0)[:, None].repeat(1, 12)
    remapped = _remap_gains(gains, old, new)
    assert torch.allclose(remapped[-1], gains[-1])  # the same lambda at quality 100
    assert remapped[0, 0] < gains[0, 0]  # extrapolated below the old range


def test_training_a_denoiser_from_a_plain_run(tmp_path):
    data = tmp_path / "images"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(data / f"{i}.png")
    plain = TrainConfig.smoke(data=str(data), out=str(tmp_path / "plain"))
    train(plain, progress=False)
    cfg = TrainConfig.smoke(data=str(data), out=str(tmp_path / "dn"), init=str(tmp_path / "plain" / "checkpoint.pt"),
                            model=dataclasses.replace(plain.model, denoise=True), noise_share=1.0)
    net = train(cfg, progress=False)
    assert float(net.noise_scale.abs().sum()) > 0  # the conditioning learns
    fresh = HyperpriorModel(cfg.model)
    warm_start(fresh, tmp_path / "dn" / "checkpoint.pt")
    assert torch.equal(fresh.noise_shift, net.noise_shift.detach().cpu())
