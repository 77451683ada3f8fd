"""Damaged or hostile .aec files are rejected with a clear error, never a crash or a huge allocation."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from aecompress import codec, container

from conftest import GOLDEN, golden_model_for, smooth_image
from make_golden import soft_alpha

SAMPLE = (GOLDEN / "rgb_65x257_q30.aec").read_bytes()


def test_pack_unpack_roundtrip():
    header = container.Header(65, 257, "RGBA", 33.25, "some-model", bytes(range(8)))
    f = container.AecFile(header, {container.Z_STREAM: b"zz", container.Y_STREAM: b"y" * 1000,
                                   container.ALPHA: b"a"})
    back = container.unpack(container.pack(f))
    assert back == f


def test_header_is_small():
    data = container.pack(container.AecFile(
        container.Header(768, 512, "RGB", 75, "hyperprior-64x128", bytes(8)),
        {container.Z_STREAM: b"", container.Y_STREAM: b""}))
    assert len(data) <= 64


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_huge_declared_size_is_refused_before_decoding():
    body = bytearray(SAMPLE[:-4])
    struct.pack_into("<II", body, 6, 2**31, 2**31)
    with pytest.raises(container.FormatError, match="exceeds"):
        container.unpack(_with_crc(bytes(body)))


def test_wrong_magic_and_version_are_named():
    with pytest.raises(container.FormatError, match="magic"):
        container.unpack(b"PNG!" + SAMPLE[4:])
    body = bytearray(SAMPLE[:-4])
    body[4] = 99
    with pytest.raises(container.FormatError, match="version 99"):
        container.unpack(_with_crc(bytes(body)))


def test_every_truncation_is_rejected(golden_model):
    for n in range(len(SAMPLE)):
        with pytest.raises(codec.DecodeError):
            codec.read(SAMPLE[:n], model=golden_model)


def test_every_single_bit_flip_is_detected(golden_model):
    rng = np.random.default_rng(0)
    for bit in rng.choice(8 * len(SAMPLE), 400, replace=False):
        data = bytearray(SAMPLE)
        data[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(codec.DecodeError):
            codec.read(bytes(data), model=golden_model)


def test_section_lengths_beyond_the_file_are_refused():
    body = bytearray(SAMPLE[:-4])
    name_len = body[16]
    first_section = 17 + name_len + 8 + 1
    struct.pack_into("<I", body, first_section + 1, 2**32 - 1)
    with pytest.raises(container.FormatError, match="past the end"):
        container.unpack(_with_crc(bytes(body)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected(golden_model, data):
    with pytest.raises(codec.DecodeError):
        codec.read(data, model=golden_model)


@pytest.mark.parametrize("name", ["rgb_65x257_q30.aec", "context_rgb_70x90_q60.aec", "groups_rgb_75x81_q45.aec"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_streams_with_valid_checksum_fail_cleanly(name, data):
    """Damage inside the entropy-coded payload, then a fresh CRC: decoding gives an image or a DecodeError."""
    model = golden_model_for(name)
    f = container.unpack((GOLDEN / name).read_bytes())
    tag = data.draw(st.sampled_from([container.Z_STREAM, container.Y_STREAM]))
    payload = bytearray(f.sections[tag])
    for _ in range(data.draw(st.integers(1, 4))):
        if payload:
            payload[data.draw(st.integers(0, len(payload) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    sections = {**f.sections, tag: bytes(payload[:cut])}
    damaged = container.pack(container.AecFile(f.header, sections))
    try:
        image = codec.decode(damaged, model=model)
        assert image.size == (f.header.width, f.header.height)
    except codec.DecodeError:
        pass


def alpha_planes() -> dict[str, np.ndarray]:
    """Alpha as images carry it: a cut-out of a photo-like image with a soft edge, its hard
    (binary) mask, a vignette, a gradient, fully opaque."""
    luma = smooth_image(240, 320, seed=11).mean(axis=-1)
    mask = ((luma > 140) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:240, 0:320]
    vignette = np.clip(255 * (1.3 - 2 * np.hypot(yy / 240 - 0.5, xx / 320 - 0.5)), 0, 255).astype(np.uint8)
    return {"cut-out": np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(2))), "mask": mask,
            "vignette": vignette, "gradient": (xx * 255 // 319).astype(np.uint8),
            "opaque": np.full((240, 320), 255, np.uint8)}


def optimized_png(plane: np.ndarray) -> int:
    out = io.BytesIO()
    Image.fromarray(plane).save(out, "PNG", optimize=True)
    return len(out.getvalue())


@pytest.mark.parametrize("name", sorted(alpha_planes()))
def test_alpha_section_is_no_larger_than_an_optimized_png(name):
    plane = alpha_planes()[name]
    payload = container.pack_alpha(plane)
    assert len(payload) <= optimized_png(plane)
    assert np.array_equal(container.unpack_alpha({container.ALPHA2: payload}, 320, 240), plane)


@pytest.mark.parametrize("coder", [container.DEFLATE, container.LZMA])
@pytest.mark.parametrize("f", range(4))
def test_every_alpha_filter_and_coder_decodes(f, coder):
    plane = np.random.default_rng(f).integers(0, 256, (7, 5), dtype=np.uint8)
    data = container._filtered(plane, f)
    stream = zlib.compress(data) if coder == container.DEFLATE else container.lzma.compress(
        data, container.lzma.FORMAT_RAW, filters=container._lzma_filters(plane.size))
    back = container.unpack_alpha({container.ALPHA2: bytes([f, coder]) + stream}, 5, 7)
    assert np.array_equal(back, plane)


def test_damaged_alpha_sections_are_refused_in_one_line():
    plane = soft_alpha(31, 40)
    payload = container.pack_alpha(plane)
    longer = container.pack_alpha(np.concatenate([plane, plane]))  # a valid stream of twice the bytes
    for bad in (b"", payload[:1], bytes([4]) + payload[1:], payload[:1] + bytes([2]) + payload[2:],
                payload[:-3], payload + b"\0", longer, payload[:2] + bytes(len(payload) - 2)):
        with pytest.raises(container.FormatError, match="alpha"):
            container.unpack_alpha({container.ALPHA2: bad}, 40, 31)


def test_old_and_new_golden_alpha_decode_exactly(golden_model):
    """rgba_33x17 holds alpha the old way (section 3, zlib): it still decodes to the opaque
    plane it was made from; alpha2_47x29 holds its cut-out in section 7."""
    old = codec.decode((GOLDEN / "rgba_33x17_q55.aec").read_bytes(), model=golden_model)
    assert container.ALPHA in container.unpack((GOLDEN / "rgba_33x17_q55.aec").read_bytes()).sections
    assert np.array_equal(np.asarray(old)[..., 3], np.full((33, 17), 255, np.uint8))
    data = (GOLDEN / "alpha2_47x29_q40.aec").read_bytes()
    assert set(container.unpack(data).sections) == {container.Z_STREAM, container.Y_STREAM, container.ALPHA2}
    assert np.array_equal(np.asarray(codec.decode(data, model=golden_model))[..., 3], soft_alpha(47, 29))


def test_a_damaged_alpha_section_is_a_decode_error(golden_model):
    f = container.unpack((GOLDEN / "alpha2_47x29_q40.aec").read_bytes())
    payload = f.sections[container.ALPHA2]
    damaged = container.pack(container.AecFile(f.header, {**f.sections, container.ALPHA2: payload[:-5]}))
    with pytest.raises(codec.DecodeError, match="alpha"):
        codec.decode(damaged, model=golden_model)
