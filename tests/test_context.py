"""The context model: exact integers, y streams in parts, training it alone."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from aecompress import codec, coder, exact, intnet, zoo
from aecompress.entropy import gaussian_tables
from aecompress.model import HyperpriorModel, ModelConfig
from aecompress.train import (
    DECODER,
    ENCODER,
    TrainConfig,
    export_run,
    latent_rate_loss,
    rd_loss,
    set_context_only,
    train,
    warm_start,
)

from conftest import rd_cost, smooth_image, tiny_context_model_file, tiny_model_file


@pytest.fixture(scope="module", params=[(0, 1, 1, 3), (0, 3, 1, 3), (2, 2, 4, 3), (3, 2, 2, 5)],
                ids=["checkerboard", "3-anchor-groups", "2-anchor-4-other-groups", "5x5-window"])
def tiny_context(request, tmp_path_factory) -> zoo.CodingModel:
    path = tmp_path_factory.mktemp("model") / "tiny-context.pt"
    return zoo.load_file(tiny_context_model_file(path, *request.param))


def hyper_and_context(model, h=40, w=56, quality=60):
    """The hyperprior's tables of an image and the latents the context model made of them."""
    rgb = smooth_image(h, w, seed=7)
    latents = codec.analyze(model, rgb, quality)
    index, mean_int = exact.h_s(model.h_s, latents.z_hat, latents.index.shape[1:], model.config.levels)
    return latents, index, mean_int


@pytest.mark.parametrize("h,w", [(1, 1), (17, 33), (48, 80), (100, 37)])
def test_decode_inverts_encode_with_a_context_model(tiny_context, h, w):
    rgb = smooth_image(h, w, seed=h + w)
    latents = codec.analyze(tiny_context, rgb, 70)
    data = codec.encode(rgb, 70, model=tiny_context)
    _, _, decoded = codec.read(data, model=tiny_context)
    for name in ("z_hat", "y_symbols", "index", "mean_int"):
        np.testing.assert_array_equal(getattr(decoded, name), getattr(latents, name))
    back = np.asarray(codec.decode(data, model=tiny_context))
    assert back.shape == rgb.shape


def test_context_corrects_all_but_the_first_part(tiny_context):
    """The first part keeps the hyperprior's tables; every later part has its own."""
    latents, index, mean_int = hyper_and_context(tiny_context, 96, 128)
    first, *later = tiny_context.parts
    config = tiny_context.config
    assert len(later) == len(tiny_context.context) == config.context_slices + config.non_anchor_slices - 1
    assert sum((p.channels.stop - p.channels.start) for p in tiny_context.parts) == 2 * config.M
    at = first.positions(*index.shape[1:])
    np.testing.assert_array_equal(latents.index[first.channels][:, at], index[first.channels][:, at])
    np.testing.assert_array_equal(latents.mean_int[first.channels][:, at], mean_int[first.channels][:, at])
    for part in later:
        at = part.positions(*index.shape[1:])
        assert (latents.index[part.channels][:, at] != index[part.channels][:, at]).any()
        assert (latents.mean_int[part.channels][:, at] != mean_int[part.channels][:, at]).any()


def test_exact_context_matches_the_training_network(tiny_context):
    """The float network the model trains with gives the integers the coder uses."""
    latents, index, mean_int = hyper_and_context(tiny_context)
    y_hat = intnet.means(latents.mean_int) + torch.from_numpy(latents.y_symbols).float()
    with torch.no_grad():
        new_index, new_mean = tiny_context.net.context(
            y_hat[None], torch.from_numpy(index).float()[None], intnet.means(mean_int)[None])
    np.testing.assert_array_equal(new_index[0].numpy(), latents.index)
    np.testing.assert_array_equal((new_mean[0] * 16).numpy(), latents.mean_int)


@pytest.mark.parametrize("band", [1, 2, 5])
def test_exact_context_does_not_depend_on_the_band_height(tiny_context, band):
    latents, index, mean_int = hyper_and_context(tiny_context)
    for part in tiny_context.parts[1:]:
        exact.correct(part, latents.y_symbols, index, mean_int, tiny_context.config.levels, band)
    np.testing.assert_array_equal(index, latents.index)
    np.testing.assert_array_equal(mean_int, latents.mean_int)


@pytest.mark.parametrize("slices", [1, 4])
def test_an_untrained_context_model_leaves_the_tables_as_they_were(tmp_path, slices):
    torch.manual_seed(1)
    net = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=slices))
    zoo.export(net, tmp_path / "m.pt", "fresh-context")
    model = zoo.load_file(tmp_path / "m.pt")
    latents, index, mean_int = hyper_and_context(model)
    np.testing.assert_array_equal(latents.index, index)
    np.testing.assert_array_equal(latents.mean_int, mean_int)


def test_a_damaged_second_part_is_caught(tiny_context):
    data = bytearray(codec.encode(smooth_image(64, 64), 80, model=tiny_context))
    f = codec.container.unpack(bytes(data))
    y = bytearray(f.sections[codec.Y_STREAM])
    y[:4] = bytes(4)  # the stack's top: the anchors' part, whose damage reaches the second part
    with pytest.raises(codec.DecodeError):
        sections = {**f.sections, codec.Y_STREAM: bytes(y)}
        codec.read(codec.container.pack(codec.container.AecFile(f.header, sections)), model=tiny_context)


def test_parts_decode_in_order_with_tables_chosen_between_them():
    tables = gaussian_tables(16)
    rng = np.random.default_rng(0)
    first = rng.integers(-3, 4, 500)
    first_ids = rng.integers(0, 16, 500)
    second = rng.integers(-60, 61, 300)
    second_ids = np.abs(first[:300]) + 10  # chosen from the first part's symbols
    data = coder.encode_parts([(first, first_ids), (second, second_ids)], tables)
    reader = coder.Reader(data)
    got_first = reader.read(first_ids, tables)
    got_second = reader.read(np.abs(got_first[:300]) + 10, tables)
    reader.finish()
    np.testing.assert_array_equal(got_first, first)
    np.testing.assert_array_equal(got_second, second)
    assert coder.encode_parts([(first, first_ids)], tables) == coder.encode(first, first_ids, tables)


def test_the_search_lowers_the_cost_of_a_file_with_a_context_model(tiny_context):
    rgb = smooth_image(40, 40, seed=2)
    plain = codec.encode(rgb, 50, model=tiny_context)
    searched = codec.encode(rgb, 50, model=tiny_context, effort=1)
    assert rd_cost(tiny_context, rgb, searched, 50) < rd_cost(tiny_context, rgb, plain, 50)


def context_only_run(tmp_path, **overrides) -> TrainConfig:
    """A context-only smoke run that adds a context model to a tiny denoising model."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    from PIL import Image

    for i in range(3):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(data / f"{i}.png")
    source = tiny_model_file(tmp_path / "source.pt")
    model = ModelConfig(N=8, M=12, levels=64, context=16, denoise=True)
    settings = dict(data=str(data), out=str(tmp_path / "run"), init=str(source), steps=3, model=model,
                    context_only=True, noise_share=0.5)
    return TrainConfig.smoke(**{**settings, **overrides})


@pytest.mark.parametrize("latent_reuse", [1, 3])
def test_context_only_training_changes_nothing_else(tmp_path, latent_reuse):
    """A context model learns on top of a trained model, which stays exactly as it was, whether
    g_a runs on every crop or its latents are drawn again from a pool."""
    cfg = context_only_run(tmp_path, latent_reuse=latent_reuse, batch=3, latent_pool=4)
    before = HyperpriorModel(cfg.model)
    warm_start(before, cfg.init)
    after = train(cfg, resume=False, progress=False)
    for (name, a), b in zip(after.state_dict().items(), before.state_dict().values()):
        if not name.startswith("context."):
            assert torch.equal(a.cpu(), b), name
    assert any(not torch.equal(a.cpu(), b) for (name, a), b in
               zip(after.state_dict().items(), before.state_dict().values()) if name.startswith("context."))
    with pytest.raises(ValueError, match="no context model"):
        set_context_only(HyperpriorModel(ModelConfig(N=8, M=12)))


def test_rate_of_stored_latents_is_the_rate_of_the_pixels():
    """What a latent pool feeds the loss is what running g_a on the crops would have."""
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=2)).eval()
    x, t = torch.rand(2, 3, 64, 64), torch.tensor([0.2, 0.9])
    with torch.no_grad():
        from_pixels = rd_loss(model, x, t, autocast=False, rate_only=True)[2]
        from_latents = latent_rate_loss(model, model.encode_pixels(x), t, 64 * 64)[2]
    torch.testing.assert_close(from_latents, from_pixels, rtol=0, atol=0)


def test_context_only_run_from_a_latent_pool_resumes_exactly(tmp_path):
    """The pool is rebuilt on resume (each crop has its own seed), so the run goes on unchanged."""
    cfg = context_only_run(tmp_path, latent_reuse=2, batch=3, latent_pool=4, steps=6)
    straight = train(replace(cfg, out=str(tmp_path / "a")), resume=False, progress=False)
    train(replace(cfg, out=str(tmp_path / "b")), progress=False, until=3)
    resumed = train(replace(cfg, out=str(tmp_path / "b")), progress=False)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_latent_pool_needs_a_frozen_g_a(tmp_path):
    cfg = context_only_run(tmp_path, latent_reuse=2)
    with pytest.raises(ValueError, match="context_only"):
        train(replace(cfg, context_only=False), resume=False, progress=False)


def photo_folder(tmp_path) -> str:
    """Three small photo-like training images."""
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(data / f"{i}.png")
    return str(data)


def trained_and_changed(cfg: TrainConfig) -> tuple[HyperpriorModel, set[str]]:
    """Train cfg from its --init; the trained net and the names of the weights that moved."""
    before = HyperpriorModel(cfg.model)
    warm_start(before, cfg.init)
    after = train(cfg, resume=False, progress=False)
    changed = {name for (name, a), b in zip(after.state_dict().items(), before.state_dict().values())
               if not torch.equal(a.cpu(), b)}
    return after, changed


@pytest.mark.parametrize("analysis_width", [None, 24])
def test_encoder_only_training_keeps_the_decoder_bit_identical(tmp_path, monkeypatch, analysis_width):
    """g_a learns the entropy model it now codes with; everything the decoder reads stays as it
    was, so the weights decode exactly as before, and files differ only where g_a changed y.
    A wider g_a (analysis_width) trains the same way."""
    data = photo_folder(tmp_path)
    source = tiny_context_model_file(tmp_path / "source.pt", slices=3)
    net = zoo.load_file(source).net.float()
    with torch.no_grad():  # integer biases beyond float32's 2^24, as a trained model's can be
        net.context.anchors.bias.add_(5e7 * net.context.anchors.out_scale / 2**16)
        net.context.hyper.bias.add_((1e7 + 1) * net.context.hyper.out_scale / 2**16)  # stored summed with it
    zoo.export(net, source, "source")
    model = replace(zoo.load_file(source).config, analysis_width=analysis_width)
    cfg = TrainConfig.smoke(data=data, out=str(tmp_path / "run"), init=str(source), steps=3,
                            model=model, encoder_only=True, lr=1e-2)
    after, changed = trained_and_changed(cfg)
    assert changed and all(name.startswith(ENCODER) for name in changed), changed
    assert any(name.startswith("g_a.") for name in changed)
    assert "log_inverse_gain" not in changed
    # The weights file it exports carries the source's integer tables exactly.
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    exported, original = zoo.load_file(export_run(after, cfg, "encoder")), zoo.load_file(source)
    assert int(max(np.abs(layer["bias"]).max() for layer in original.context[0])) >= 2**24
    def integer_layers(m: zoo.CodingModel) -> list[dict]:
        return m.h_s + [layer for net in m.context for layer in net]

    for a, b in zip(integer_layers(exported), integer_layers(original), strict=True):
        np.testing.assert_array_equal(a["weight"], b["weight"])
        np.testing.assert_array_equal(a["bias"], b["bias"])


def test_encoder_only_training_for_a_new_lambda_range_changes_only_the_inverse_gains_of_the_decoder(tmp_path,
                                                                                                  monkeypatch):
    """With another lambda range every quality means another trade-off, so the decoder's inverse
    gains learn with the encoder (here quality-conditioned too); g_s, h_s, the z prior and the
    context model stay exactly as they were, and the file format does not change."""
    data = tmp_path / "data"
    data.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(smooth_image(96, 96, seed=i)).save(data / f"{i}.png")
    source = tiny_context_model_file(tmp_path / "source.pt", slices=3)
    model = replace(zoo.load_file(source).config, lambda_max=0.5, quality_conditioned=True)
    cfg = TrainConfig.smoke(data=str(data), out=str(tmp_path / "run"), init=str(source), steps=3,
                            model=model, encoder_only=True, inverse_gains=True, lr=1e-2)
    before = HyperpriorModel(cfg.model)
    warm_start(before, cfg.init)
    after = train(cfg, resume=False, progress=False)
    changed = {name for (name, a), b in zip(after.state_dict().items(), before.state_dict().values())
               if not torch.equal(a.cpu(), b)}
    assert {"log_inverse_gain", "quality_scale", "log_gain"} <= changed
    assert all(name.startswith((*ENCODER, "log_inverse_gain")) for name in changed), changed
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    exported, original = zoo.load_file(export_run(after, cfg, "encoder")), zoo.load_file(source)
    for a, b in zip(exported.h_s + [layer for net in exported.context for layer in net],
                    original.h_s + [layer for net in original.context for layer in net], strict=True):
        np.testing.assert_array_equal(a["weight"], b["weight"])
    rgb = smooth_image(48, 64, seed=2)
    assert np.asarray(codec.decode(codec.encode(rgb, 90, model=exported), model=exported)).shape == rgb.shape
    with pytest.raises(ValueError, match="inverse_gains"):
        train(replace(cfg, encoder_only=False), resume=False, progress=False)


def test_a_context_model_does_not_grow_with_y(tmp_path):
    source = tiny_context_model_file(tmp_path / "source.pt")
    with pytest.raises(ValueError, match="context model fits only M=12"):
        warm_start(HyperpriorModel(ModelConfig(N=8, M=16, context=16)), source)
    model = HyperpriorModel(ModelConfig(N=8, M=12, context=16))
    warm_start(model, source)  # the same model: everything loads, the context model too
    assert torch.equal(model.context.out.weight, zoo.load_file(source).net.context.out.weight)


def grown_codes_alike(source, grown: HyperpriorModel, path) -> zoo.CodingModel:
    """Warm-start `grown` from `source`, export it to `path` and check that it codes an image with
    exactly the symbols and tables the source does; the exported model."""
    warm_start(grown, source)
    zoo.export(grown, path, path.stem)
    before, after = zoo.load_file(source), zoo.load_file(path)
    rgb = smooth_image(48, 64, seed=3)
    for name in ("y_symbols", "index", "mean_int"):
        np.testing.assert_array_equal(getattr(codec.analyze(after, rgb, 40, torch.device("cpu")), name),
                                      getattr(codec.analyze(before, rgb, 40, torch.device("cpu")), name))
    return after


def test_anchor_groups_added_to_a_trained_context_model_start_where_it_was(tmp_path):
    """Grouping the anchors of a trained model changes no table until the new networks learn."""
    source = tiny_context_model_file(tmp_path / "source.pt")
    grouped = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=4))
    after = grown_codes_alike(source, grouped, tmp_path / "grouped.pt")
    assert len(after.context) == 4
    with pytest.raises(ValueError, match="cannot be regrouped"):
        warm_start(HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=2)), tmp_path / "grouped.pt")
    with pytest.raises(ValueError, match="do not split into 5 equal groups"):
        HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=5))


def test_groups_of_the_other_positions_start_where_the_model_was(tmp_path):
    """Likewise for the other positions: the new parts are coded with the tables of before."""
    source = tiny_context_model_file(tmp_path / "source.pt", slices=3)
    grouped = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=3, non_anchor_slices=4))
    after = grown_codes_alike(source, grouped, tmp_path / "grouped.pt")
    assert [(p.channels, p.anchors) for p in after.parts[3:]] == [(slice(3 * k, 3 * k + 3), False) for k in range(4)]
    with pytest.raises(ValueError, match="other positions in 4 channel groups, which cannot be regrouped"):
        warm_start(HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=3, non_anchor_slices=2)),
                   tmp_path / "grouped.pt")
    with pytest.raises(ValueError, match="other positions' 12 channels do not split into 5"):
        HyperpriorModel(ModelConfig(N=8, M=12, context=16, non_anchor_slices=5))


def test_a_wider_window_starts_where_the_model_was(tmp_path):
    """The other positions of a trained 3x3 model may read a 5x5 window: the new taps start at
    zero, so every table is as it was; a window never shrinks."""
    source = tiny_context_model_file(tmp_path / "source.pt", slices=2, non_anchor_slices=2)
    wide = HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=2, non_anchor_slices=2,
                                       context_window=5))
    after = grown_codes_alike(source, wide, tmp_path / "wide.pt")
    assert after.context[0][0]["weight"].shape[-1] == 12  # the anchors of a 5x5 window
    with pytest.raises(ValueError, match="5x5 window, which cannot shrink"):
        warm_start(HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_slices=2, non_anchor_slices=2)),
                   tmp_path / "wide.pt")
    with pytest.raises(ValueError, match="must be one of"):
        HyperpriorModel(ModelConfig(N=8, M=12, context=16, context_window=4))


@pytest.mark.parametrize("width", [None, 12])
def test_decoder_only_training_keeps_every_files_bits(tmp_path, monkeypatch, width):
    """Only g_s and the inverse gains learn (a widened g_s too): the encoder, the entropy model
    and every table stay as they were, so any image codes to exactly the same symbols."""
    source = tiny_context_model_file(tmp_path / "source.pt", slices=3)
    config = zoo.load_file(source).config
    model = replace(config, width=width, analysis_width=config.N if width else None)  # g_a stays as it is
    cfg = TrainConfig.smoke(data=photo_folder(tmp_path), out=str(tmp_path / "run"), init=str(source), steps=3,
                            model=model, decoder_only=True, lr=1e-2)
    after, changed = trained_and_changed(cfg)
    assert changed and all(name.startswith(DECODER) for name in changed), changed
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path / "weights")
    exported, original = zoo.load_file(export_run(after, cfg, "decoder")), zoo.load_file(source)
    rgb = smooth_image(48, 80, seed=5)
    for quality in (20, 80):
        a, b = codec.analyze(exported, rgb, quality), codec.analyze(original, rgb, quality)
        for name in ("z_hat", "y_symbols", "index", "mean_int"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(codec.synthesize(exported, a, 80, 80, 48), codec.synthesize(original, b, 80, 80, 48))
