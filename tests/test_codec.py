import numpy as np
import pytest
from PIL import Image

from aecompress import codec, container
from aecompress.tables import information_bits

from conftest import smooth_image


@pytest.mark.parametrize("h,w", [(1, 1), (2, 3), (65, 257), (17, 1000), (64, 64)])
def test_decode_inverts_encode_at_odd_sizes(tiny, h, w):
    img = smooth_image(h, w)
    data = codec.encode(img, 60, model=tiny)
    out = codec.decode(data, model=tiny)
    assert out.size == (w, h) and out.mode == "RGB"
    f, _, latents = codec.read(data, model=tiny)
    again = codec.analyze(tiny, img, f.header.quality, "cpu")
    assert np.array_equal(latents.y_symbols, again.y_symbols)
    assert np.array_equal(latents.z_hat, again.z_hat)


def test_coded_size_matches_estimate(tiny):
    img = smooth_image(256, 384)
    for quality in (20, 80):
        latents = codec.analyze(tiny, img, quality, "cpu")
        z, y = codec.encode_latents(tiny, latents)
        estimate = information_bits(latents.y_symbols, latents.index, tiny.y_tables)
        estimate += information_bits(latents.z_hat, codec._z_table_ids(latents.z_hat.shape),
                                           tiny.z_tables)
        coded = 8 * (len(z) + len(y))
        assert estimate <= coded  # information bound: never fewer bits than the model's estimate
        assert coded <= 1.02 * estimate + 2 * 64  # within 2%, plus each stream's final state


def test_symbols_outside_every_table_are_escaped_not_clipped(tiny):
    img = smooth_image(64, 64)
    latents = codec.analyze(tiny, img, 50, "cpu")
    y = latents.y_symbols.copy()
    y[0, 0, 0], y[1, 1, 1], y[2, 0, 1] = 10**6, -(10**6), 12345
    wild = codec.Latents(latents.z_hat, y, latents.index, latents.mean_int)
    z_stream, y_stream = codec.encode_latents(tiny, wild)
    back = codec.decode_latents(tiny, z_stream, y_stream, 64, 64)
    assert np.array_equal(back.y_symbols, y)


def test_grayscale_and_alpha_modes_are_restored(tiny):
    rgb = smooth_image(40, 30)
    gray = Image.fromarray(rgb).convert("L")
    assert codec.decode(codec.encode(gray, 70, model=tiny), model=tiny).mode == "L"
    rgba = Image.fromarray(rgb).convert("RGBA")
    alpha = np.random.default_rng(1).integers(0, 256, (40, 30), dtype=np.uint8)
    rgba.putalpha(Image.fromarray(alpha))
    out = codec.decode(codec.encode(rgba, 70, model=tiny), model=tiny)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_header_names_model_and_quality(tiny):
    data = codec.encode(smooth_image(20, 20), 42.5, model=tiny)
    h = container.unpack(data).header
    assert (h.width, h.height, h.mode, h.quality, h.model) == (20, 20, "RGB", 42.5, "tiny-test")
    assert h.model_hash == tiny.digest


def test_decoding_with_other_weights_is_refused(tiny, tmp_path):
    from aecompress import zoo

    from conftest import tiny_model_file

    other = zoo.load_file(tiny_model_file(tmp_path / "other.pt", seed=1))
    data = codec.encode(smooth_image(20, 20), 50, model=tiny)
    with pytest.raises(codec.DecodeError, match="other weights"):
        codec.decode(data, model=other)


def test_quality_out_of_range_is_refused(tiny):
    with pytest.raises(ValueError):
        codec.encode(smooth_image(8, 8), 0, model=tiny)


def test_pillow_opens_and_saves_aec(tmp_path, monkeypatch):
    import hashlib
    import shutil

    import aecompress  # noqa: F401  (registers the plugin)
    from aecompress import zoo

    from conftest import GOLDEN

    weights = tmp_path / "weights"
    weights.mkdir()
    shutil.copy(GOLDEN / "tiny.pt", weights / "tiny.pt")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", weights)
    zoo.register(weights / "tiny.pt", hashlib.sha256((weights / "tiny.pt").read_bytes()).hexdigest())
    img = Image.fromarray(smooth_image(30, 50))
    path = tmp_path / "x.aec"
    img.save(path, quality=80)
    assert container.unpack(path.read_bytes()).header.quality == 80
    with Image.open(path) as back:
        assert back.format == "AEC" and back.size == (50, 30) and back.mode == "RGB"
        pixels = np.asarray(back)
    assert np.array_equal(pixels, np.asarray(codec.decode(path.read_bytes())))
    zoo.load.cache_clear()
