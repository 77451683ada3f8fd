"""Training runs, resumes exactly where it stopped, and trains the same model on every DDP rank."""

import hashlib
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from aecompress import codec, zoo
from aecompress.cli import main
from aecompress.train import TrainConfig, export_run, rd_loss, train

from conftest import smooth_image


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train_images")
    for i, (h, w) in enumerate([(96, 128), (160, 96), (80, 80)]):
        Image.fromarray(smooth_image(h, w, seed=i)).save(folder / f"img{i}.png")
    return folder


def state_digest(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def denoising_model_file(path: Path) -> Path:
    """A tiny denoising model whose noise conditioning does something, exported to `path`."""
    from aecompress.model import HyperpriorModel, ModelConfig

    torch.manual_seed(0)
    net = HyperpriorModel(ModelConfig(N=8, M=12, denoise=True))
    with torch.no_grad():
        net.noise_scale.normal_()
    zoo.export(net, path, path.stem)
    return path


def test_resumed_run_equals_uninterrupted_run(data_dir, tmp_path):
    straight = train(TrainConfig.smoke(data=str(data_dir), steps=6, out=str(tmp_path / "a")), progress=False)
    resumed_cfg = TrainConfig.smoke(data=str(data_dir), steps=6, out=str(tmp_path / "b"))
    halfway = state_digest(train(resumed_cfg, progress=False, until=3))
    assert torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["step"] == 3
    resumed = train(resumed_cfg, progress=False)
    assert state_digest(straight) == state_digest(resumed) != halfway  # the last three steps did train


@pytest.mark.parametrize("simplified_gdn", [False, True])
def test_trained_model_exports_and_codes(data_dir, tmp_path, monkeypatch, simplified_gdn):
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    cfg = TrainConfig.smoke(data=str(data_dir), out=str(tmp_path / "run"))
    cfg = replace(cfg, model=replace(cfg.model, simplified_gdn=simplified_gdn))
    net = train(cfg, progress=False)
    path = export_run(net, cfg, "smoke-model")
    entry = zoo.manifest(tmp_path / "weights")["models"][0]
    assert entry["name"] == "smoke-model" and entry["metadata"]["steps"] == cfg.steps
    model = zoo.load_file(path, entry["sha256"])
    assert model.config == cfg.model
    img = smooth_image(40, 56)
    assert codec.decode(codec.encode(img, 50, model=model), model=model).size == (56, 40)
    with torch.no_grad():  # the loaded transforms are the trained ones (GDN kind included)
        x = torch.rand(1, 3, 32, 32)
        assert torch.allclose(model.net.g_s(model.net.g_a(x)), net.eval().g_s(net.g_a(x)), atol=1e-2)


DDP_SCRIPT = """
import hashlib, os, sys
import torch
sys.path.insert(0, {tests!r})
from aecompress.train import TrainConfig, train
from test_train import state_digest
cfg = TrainConfig.smoke(data={data!r}, out={out!r}, steps=3)
model = train(cfg, progress=False)
open(os.path.join({out!r}, "rank%s.sha" % os.environ["RANK"]), "w").write(state_digest(model))
"""


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_ranks_end_with_identical_weights(data_dir, tmp_path):
    script = tmp_path / "ddp.py"
    out = tmp_path / "ddp"
    out.mkdir()
    script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), data=str(data_dir), out=str(out)))
    # The environment torchrun gives its workers, over loopback only: no host name to resolve, no
    # rendezvous service, so the test holds in sandboxes whose network is just `lo`.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_local_port()),
           "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "GLOO_SOCKET_IFNAME": "lo"}
    logs = [tmp_path / f"rank{rank}.log" for rank in (0, 1)]
    workers = [subprocess.Popen([sys.executable, str(script)], stdout=log.open("w"), stderr=subprocess.STDOUT,
                                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)})
               for rank, log in enumerate(logs)]
    for worker, log in zip(workers, logs):
        assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
    digests = [(out / f"rank{r}.sha").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]
    assert (out / "checkpoint.pt").exists()


def test_train_command_takes_its_settings_into_the_run(data_dir, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--smoke", "--data", str(data_dir), "--out", str(out), "--min-downscale", "1",
            "--quality-power", "0.5", "--lr", "1e-4"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    saved = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["step"] == TrainConfig.smoke().steps
    settings = saved["train_config"]
    assert settings["quality_power"] == 0.5 and settings["lr"] == 1e-4 and settings["min_downscale"] == 1
    r = CliRunner().invoke(main, [*args[:-4], "--quality-power", "0"])
    assert r.exit_code == 2 and "--quality-power" in r.output
    r = CliRunner().invoke(main, [*args[:-6], "--min-downscale", "0"])
    assert r.exit_code == 2 and "--min-downscale" in r.output


def test_widening_y_keeps_what_the_model_reconstructs(tmp_path):
    from aecompress.entropy import scale_from_index
    from aecompress.intnet import FRACTION_BITS
    from aecompress.model import HyperpriorModel, ModelConfig
    from aecompress.train import warm_start

    torch.manual_seed(0)
    source = tmp_path / "narrow.pt"
    zoo.export(HyperpriorModel(ModelConfig(N=8, M=12)), source, "narrow")
    narrow = zoo.load_file(source).net.float().eval()  # as stored (fp16 transforms)
    wide = HyperpriorModel(ModelConfig(N=8, M=20))
    warm_start(wide, source)
    wide.eval()
    x, t = torch.rand(2, 3, 64, 64), torch.tensor([0.2, 0.9])
    with torch.no_grad():
        before, after = narrow(x, t), wide(x, t)
    assert torch.allclose(before.x_hat, after.x_hat, atol=1e-5)
    assert torch.equal(before.bits_z, after.bits_z)
    # The trained channels keep their exact integer tables and means: h_s rows are carried over.
    old_rows, new_rows = narrow.h_s.export()[-1], wide.h_s.export()[-1]
    assert (new_rows["weight"][:12] == old_rows["weight"][:12]).all()
    assert (new_rows["weight"][20:32] == old_rows["weight"][12:]).all()
    assert (new_rows["weight"][12:20] == 0).all() and (new_rows["weight"][32:] == 0).all()
    assert (new_rows["bias"][32:] == 0).all()  # new channels: mean 0 ...
    index = torch.from_numpy(new_rows["bias"][12:20]).double() / 2**FRACTION_BITS
    assert (scale_from_index(index, 64) - 1).abs().max() < 0.07  # ... and the table of unit scale


@pytest.mark.parametrize("M", [12, 20])
def test_widening_the_transforms_keeps_what_the_model_reconstructs(tmp_path, M):
    from aecompress.model import HyperpriorModel, ModelConfig
    from aecompress.train import warm_start

    torch.manual_seed(0)
    source = tmp_path / "narrow.pt"
    trained = HyperpriorModel(ModelConfig(N=8, M=12, denoise=True))
    with torch.no_grad():  # a denoiser that acts, so its FiLM must be carried over too
        trained.noise_scale.normal_()
        trained.noise_shift.normal_()
    zoo.export(trained, source, "narrow")
    narrow = zoo.load_file(source).net.float().eval()
    wide = HyperpriorModel(ModelConfig(N=8, M=M, denoise=True, width=16))
    warm_start(wide, source)
    assert wide.g_s[2].weight.shape[:2] == (16, 16)
    x, t, level = torch.rand(2, 3, 64, 64), torch.tensor([0.2, 0.9]), torch.tensor([0.0, 20.0])
    with torch.no_grad():
        before, after = narrow(x, t, level), wide.eval()(x, t, level)
    assert torch.allclose(before.x_hat, after.x_hat, atol=1e-6)
    assert torch.equal(before.bits_z, after.bits_z)
    if M == 12:
        assert torch.allclose(before.bits_y, after.bits_y)
    # The trained layers read the new channels with zero weights, which still learn: the new
    # channels compute from the start, so those weights get gradients.
    assert (wide.g_s[2].weight[8:, :8] == 0).all() and (wide.g_a[2].weight[:8, 8:] == 0).all()
    wide.train()(x, t, level).x_hat.square().mean().backward()
    assert wide.g_s[2].weight.grad[8:, :8].abs().sum() > 0
    assert wide.g_a[2].weight.grad[:8, 8:].abs().sum() > 0


def test_a_wider_encoder_starts_where_the_model_was_and_leaves_the_decoder_alone(tmp_path):
    from aecompress.model import HyperpriorModel, ModelConfig
    from aecompress.train import warm_start

    source = denoising_model_file(tmp_path / "narrow.pt")
    narrow = zoo.load_file(source).net.float().eval()
    wide = HyperpriorModel(ModelConfig(N=8, M=12, denoise=True, analysis_width=20))
    warm_start(wide, source)
    assert wide.g_a[2].weight.shape[:2] == (20, 20) and wide.g_s[2].weight.shape[:2] == (8, 8)
    assert wide.noise_scale.shape == (3, 20)
    for (name, a), b in zip(wide.state_dict().items(), narrow.state_dict().values()):
        if not name.startswith(("g_a.", "noise_")):
            assert torch.equal(a, b), name  # the decoder, h_a, the gains and the entropy model as they were
    x, t, level = torch.rand(2, 3, 64, 64), torch.tensor([0.2, 0.9]), torch.tensor([0.0, 20.0])
    with torch.no_grad():
        before, after = narrow(x, t, level), wide.eval()(x, t, level)
    assert torch.allclose(before.x_hat, after.x_hat, atol=1e-6)
    assert torch.allclose(before.bits_y, after.bits_y) and torch.equal(before.bits_z, after.bits_z)
    wide.train()(x, t, level).x_hat.square().mean().backward()
    assert wide.g_a[2].weight.grad[:8, 8:].abs().sum() > 0  # the zero reads of the new channels learn
    # The grown model is a weights file like any other: it codes and decodes.
    path = tmp_path / "wide.pt"
    zoo.export(wide, path, "wide")
    model = zoo.load_file(path)
    assert model.config.analysis_channels == 20
    rgb = smooth_image(40, 56, seed=3)
    back = np.asarray(codec.decode(codec.encode(rgb, 60, model=model), model=model))
    assert back.shape == rgb.shape


def test_a_quality_conditioned_encoder_starts_as_the_source_and_makes_latents_per_quality(tmp_path):
    """Its FiLM starts at none: warm-started from an unconditioned model, it computes exactly what
    the source did. Once it learns, y depends on the quality, and every path that makes a file
    (one quality, or rate control trying many) runs g_a for the quality it codes at, or for
    rate control, for a step at or below that reaches it (ratecontrol.REACH)."""
    from aecompress import ratecontrol
    from aecompress.model import HyperpriorModel, ModelConfig
    from aecompress.train import warm_start

    source = denoising_model_file(tmp_path / "plain.pt")
    plain = zoo.load_file(source).net.float().eval()
    conditioned = HyperpriorModel(ModelConfig(N=8, M=12, denoise=True, quality_conditioned=True))
    warm_start(conditioned, source)
    x, t, level = torch.rand(2, 3, 64, 64), torch.tensor([0.2, 0.9]), torch.tensor([0.0, 20.0])
    with torch.no_grad():
        before, after = plain(x, t, level), conditioned.eval()(x, t, level)
    assert torch.equal(before.x_hat, after.x_hat) and torch.equal(before.bits_y, after.bits_y)

    with torch.no_grad():
        conditioned.quality_scale.normal_(0, 0.3)
        conditioned.quality_shift.normal_(0, 0.3)
    path = tmp_path / "conditioned.pt"
    zoo.export(conditioned, path, "conditioned")
    model = zoo.load_file(path)
    assert torch.equal(model.net.quality_scale, conditioned.quality_scale)  # kept in full precision
    image = torch.rand(1, 3, 64, 64)
    assert not torch.allclose(model.net.analysis(image, quality=20), model.net.analysis(image, quality=80))
    with pytest.raises(ValueError, match="needs the quality"):
        model.net.analysis(image)
    rgb = smooth_image(48, 80, seed=4)
    target = ratecontrol.encode_to_target(rgb, ratecontrol.Target("bpp", 1.5), model)
    assert target.data == codec.encode(rgb, target.quality, model=model, latents_for=target.latents_for)
    assert np.asarray(codec.decode(target.data, model=model)).shape == rgb.shape


@pytest.mark.parametrize("change", [{"M": 8}, {"N": 12}, {"simplified_gdn": True}, {"width": 4},
                                    {"analysis_width": 4}])
def test_warm_start_refuses_a_model_it_cannot_grow_into(tmp_path, change):
    from aecompress.model import HyperpriorModel, ModelConfig
    from aecompress.train import warm_start

    source = tmp_path / "narrow.pt"
    zoo.export(HyperpriorModel(ModelConfig(N=8, M=12)), source, "narrow")
    with pytest.raises(ValueError, match="does not fit"):
        warm_start(HyperpriorModel(replace(ModelConfig(N=8, M=12), **change)), source)


def test_uncharged_channels_cost_no_bits_and_training_charges_them_again(data_dir, tmp_path):
    from aecompress.model import HyperpriorModel, ModelConfig

    torch.manual_seed(0)
    net = HyperpriorModel(ModelConfig(N=8, M=12)).eval()
    x, t = torch.rand(1, 3, 64, 64), torch.tensor([0.7])
    with torch.no_grad():
        full = net(x, t).bits_y
        net.uncharged_from = 6
        part = net(x, t).bits_y
        net.uncharged_from = 0
        assert float(net(x, t).bits_y) == 0
    assert 0 < float(part) < float(full)
    cfg = TrainConfig.smoke(data=str(data_dir), out=str(tmp_path / "run"), uncharged_from=6, uncharged_steps=2)
    assert train(cfg, progress=False).uncharged_from is None  # charged again after the first steps


def test_train_command_from_init_keeps_the_source_model_unless_told(data_dir, tmp_path):
    from aecompress.model import HyperpriorModel, ModelConfig

    source = tmp_path / "source.pt"
    source_config = ModelConfig(N=8, M=12, lambda_min=0.001, lambda_max=0.3, denoise=True)
    zoo.export(HyperpriorModel(source_config), source, "source")
    base = ["train", "--smoke", "--data", str(data_dir), "--init", str(source)]

    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "same")])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "same" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["model"] == source_config.to_dict()

    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "wide"), "--channels", "8", "16",
                                  "--uncharged-steps", "3"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "wide" / "checkpoint.pt", map_location="cpu", weights_only=False)
    cfg = saved["train_config"]
    assert cfg["model"]["M"] == 16 and cfg["model"]["lambda_max"] == 0.3
    assert (cfg["uncharged_from"], cfg["uncharged_steps"]) == (12, 3)

    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "broad"), "--width", "12"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "broad" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["model"] == {**source_config.to_dict(), "width": 12}
    assert saved["model"]["g_s.2.weight"].shape[:2] == (12, 12)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    r = CliRunner().invoke(main, ["train", "--smoke", "--data", str(data_dir), "--init", str(junk),
                                  "--out", str(tmp_path / "junk")])
    assert r.exit_code == 1 and "not a checkpoint or weights file" in r.output
    r = CliRunner().invoke(main, ["train", "--smoke", "--data", str(data_dir), "--uncharged-steps", "3"])
    assert r.exit_code == 2 and "--uncharged-steps needs --init" in r.output
    grouped = (("--context-slices", 3, "context.slices.1.out.weight", (8, 8)),
               ("--non-anchor-slices", 4, "context.non_anchor_slices.2.anchors.weight", (8, 9)))
    for option, groups, key, shape in grouped:
        out = tmp_path / option.strip("-")
        r = CliRunner().invoke(main, [*base, "--out", str(out), option, str(groups)])
        assert r.exit_code == 2 and "add --context" in r.output
        r = CliRunner().invoke(main, [*base, "--out", str(out), "--context", "16", option, str(groups),
                                      "--context-only"])
        assert r.exit_code == 0, r.output
        saved = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
        assert saved["train_config"]["model"][option.strip("-").replace("-", "_")] == groups
        assert saved["model"][key].shape[:2] == shape
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "window"), "--context-window", "5"])
    assert r.exit_code == 2 and "add --context" in r.output
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "window"), "--context", "16", "--context-window", "5",
                                  "--context-only"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "window" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["model"]["context_window"] == 5
    assert saved["model"]["context.anchors.weight"].shape[-2:] == (5, 5)
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "pool"), "--latent-reuse", "4"])
    assert r.exit_code == 2 and "--latent-reuse needs --context-only" in r.output
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "pool"), "--context", "16", "--context-only",
                                  "--latent-reuse", "4"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "pool" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["latent_reuse"] == 4
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "groups"), "--context", "16",
                                  "--context-slices", "5"])
    assert r.exit_code == 1 and "do not split into 5 equal groups" in r.output
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "enc"), "--encoder-only", "--context", "16"])
    assert r.exit_code == 2 and "--encoder-only trains the encoder" in r.output
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "enc"), "--encoder-only"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "enc" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["encoder_only"]
    wide = ["--out", str(tmp_path / "enc-wide"), "--encoder-only", "--analysis-width", "16"]
    r = CliRunner().invoke(main, [*base, *wide])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "enc-wide" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["model"]["analysis_width"] == 16 and saved["model"]["g_a.2.weight"].shape[0] == 16
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "enc-qc"), "--encoder-only", "--quality-conditioned",
                                  "--lambdas", "0.001", "0.6"])
    assert r.exit_code == 0, r.output
    saved = torch.load(tmp_path / "enc-qc" / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert saved["train_config"]["inverse_gains"]  # a new lambda range: each quality means another trade-off
    assert saved["train_config"]["model"] == {**source_config.to_dict(), "lambda_max": 0.6, "quality_conditioned": True}
    assert saved["model"]["quality_scale"].shape == (8, 3, 8)
    r = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "qc-pool"), "--quality-conditioned", "--context", "16",
                                  "--context-only", "--latent-reuse", "4"])
    assert r.exit_code == 2 and "--context-only trains a context model" in r.output


def test_bf16_training_keeps_the_entropy_model_in_fp32(data_dir, tmp_path):
    from aecompress.model import HyperpriorModel, ModelConfig

    torch.manual_seed(0)
    net = HyperpriorModel(ModelConfig(N=8, M=12)).eval()
    x, t = torch.rand(1, 3, 64, 64), torch.tensor([0.5])
    with torch.no_grad():
        full = net(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = net(x, t)
    assert half.bits_y.dtype == half.bits_z.dtype == torch.float32
    assert abs(float(half.bits_y + half.bits_z) / float(full.bits_y + full.bits_z) - 1) < 0.05
    cfg = TrainConfig.smoke(data=str(data_dir), out=str(tmp_path / "bf16"), autocast=True)
    untrained = train(cfg, progress=False, until=0).eval()
    trained = train(cfg, progress=False).eval()
    crops = [np.asarray(Image.open(data_dir / f"img{i}.png"))[:64, :64] for i in (0, 2)]
    x, t = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255, torch.tensor([0.3, 0.8])
    with torch.no_grad():  # a fixed batch of its images, in fp32: bf16 steps lowered the loss
        assert rd_loss(trained, x, t, autocast=False)[0] < rd_loss(untrained, x, t, autocast=False)[0]
