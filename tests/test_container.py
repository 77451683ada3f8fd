"""Damaged or hostile .aec files are rejected with a clear error, never a crash or a huge allocation."""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecompress import codec, container

from conftest import GOLDEN, golden_model_for

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
