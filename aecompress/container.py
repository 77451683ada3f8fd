"""The .aec byte format. Pure `struct`: no torch, no constriction.

All integers little-endian. Layout (see docs/FORMAT.md):

    offset  size  field
    0       4     magic b"\\x8aAEC"
    4       1     format version (1)
    5       1     mode: 0 RGB, 1 L (grayscale), 2 RGBA, 3 LA
    6       4     width  (u32, >= 1)
    10      4     height (u32, >= 1)
    14      2     quality x 100 (u16, 100..10000)
    16      1     n = length of the model name
    17      n     model name (ASCII)
    17+n    8     first 8 bytes of the sha256 of the model's weights file
    25+n    1     k = number of sections
    26+n    ...   k sections: tag (u8), length (u32), payload
    end-4   4     CRC-32 of every byte before it

Section tags: 1 z stream, 2 y stream, 3 alpha (zlib, read but no longer written), 4 ICC
profile, 5 EXIF, 6 denoise (u16: the noise level the encoder removed x 10, 0..255 scale;
informative, decoding ignores it), 7 alpha2 (u8 filter, u8 coder, the filtered plane
compressed: see pack_alpha). Decoders skip tags they do not know.
"""

from __future__ import annotations

import lzma
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

MAGIC = b"\x8aAEC"
VERSION = 1
MODES = ("RGB", "L", "RGBA", "LA")
Z_STREAM, Y_STREAM, ALPHA, ICC, EXIF, DENOISE, ALPHA2 = 1, 2, 3, 4, 5, 6, 7
SECTION_NAMES = {Z_STREAM: "z", Y_STREAM: "y", ALPHA: "alpha", ICC: "icc", EXIF: "exif", DENOISE: "denoise",
                 ALPHA2: "alpha2"}
DEFAULT_MAX_PIXELS = 2**28  # 268 MP; a larger declared image is refused before any allocation

_FIXED = struct.Struct("<4sBBIIH")  # magic, version, mode, width, height, quality x 100
_SECTION = struct.Struct("<BI")
_CRC = struct.Struct("<I")


class FormatError(ValueError):
    """The bytes are not a valid .aec file."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    mode: str
    quality: float
    model: str
    model_hash: bytes  # 8 bytes


@dataclass(frozen=True)
class AecFile:
    header: Header
    sections: dict[int, bytes] = field(default_factory=dict)


def pack(f: AecFile) -> bytes:
    h = f.header
    if h.mode not in MODES:
        raise ValueError(f"unknown mode {h.mode}")
    name = h.model.encode("ascii")
    if not 1 <= len(name) <= 255 or len(h.model_hash) != 8:
        raise ValueError("model name must be 1..255 ASCII bytes and its hash 8 bytes")
    q = int(round(h.quality * 100))
    parts = [
        _FIXED.pack(MAGIC, VERSION, MODES.index(h.mode), h.width, h.height, q),
        bytes([len(name)]), name, h.model_hash, bytes([len(f.sections)]),
    ]
    for tag, payload in sorted(f.sections.items()):
        parts += [_SECTION.pack(tag, len(payload)), payload]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> AecFile:
    """Parse and validate; every length and dimension is checked before it is trusted."""
    data = bytes(data)
    minimum = _FIXED.size + 1 + 1 + 8 + 1 + _CRC.size
    if len(data) < minimum:
        raise FormatError("not an .aec file (too short)")
    magic, version, mode, width, height, q = _FIXED.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError("not an .aec file (bad magic)")
    if version != VERSION:
        raise FormatError(f"unsupported .aec format version {version} (this decoder reads {VERSION})")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise FormatError("checksum mismatch: the file is damaged or truncated")
    if mode >= len(MODES):
        raise FormatError(f"unknown image mode {mode}")
    if width < 1 or height < 1:
        raise FormatError("image has zero width or height")
    if width * height > max_pixels:
        raise FormatError(f"declared size {width}x{height} exceeds the limit of {max_pixels} pixels")
    if not 100 <= q <= 10000:
        raise FormatError(f"quality {q / 100} out of range")
    pos = _FIXED.size
    end = len(data) - _CRC.size
    n = data[pos]
    pos += 1
    if n == 0 or pos + n + 9 > end:
        raise FormatError("bad model name length")
    try:
        model = data[pos : pos + n].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("model name is not ASCII") from None
    pos += n
    model_hash = data[pos : pos + 8]
    pos += 8
    count = data[pos]
    pos += 1
    sections: dict[int, bytes] = {}
    for _ in range(count):
        if pos + _SECTION.size > end:
            raise FormatError("section table runs past the end of the file")
        tag, length = _SECTION.unpack_from(data, pos)
        pos += _SECTION.size
        if length > end - pos:
            raise FormatError("section length runs past the end of the file")
        if tag in sections:
            raise FormatError(f"duplicate section {tag}")
        sections[tag] = data[pos : pos + length]
        pos += length
    if pos != end:
        raise FormatError("trailing bytes after the last section")
    for tag in (Z_STREAM, Y_STREAM):
        if tag not in sections:
            raise FormatError(f"missing {SECTION_NAMES[tag]} stream")
    header = Header(width, height, MODES[mode], q / 100, model, model_hash)
    return AecFile(header, sections)


def pack_noise_level(level: float) -> bytes:
    return struct.pack("<H", min(round(level * 10), 2**16 - 1))


def unpack_noise_level(payload: bytes) -> float | None:
    """The denoise section's level, or None when it is damaged (it is informative only)."""
    return struct.unpack("<H", payload)[0] / 10 if len(payload) == 2 else None


# Alpha planes (section 7): byte 0 the filter, a bit mask: 1 each byte minus its left neighbour,
# 2 minus the one above (3: both; 0 before the first column or row), mod 256; byte 1 the coder
# of the filtered plane (width x height bytes, row by row): 0 zlib, 1 raw LZMA2 with a
# dictionary of min(max(width x height, 4 KiB), 8 MiB).
DEFLATE, LZMA = 0, 1


def _lzma_filters(n: int) -> list[dict]:
    return [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": min(max(n, 1 << 12), 1 << 23)}]


def _filtered(plane: np.ndarray, f: int) -> bytes:
    out = plane.copy()
    if f & 1:
        out[:, 1:] -= plane[:, :-1]
    if f & 2:
        out[1:] -= out[:-1].copy()
    return out.tobytes()


def pack_alpha(plane: np.ndarray) -> bytes:
    """An alpha plane (uint8 H x W) as a section 7 payload. The filter is the one that fast
    zlib compresses best; then zlib and LZMA at full effort, the smaller (any filter and coder
    decode: the choice is the encoder's)."""
    filtered = [_filtered(plane, f) for f in range(4)]
    f = min(range(4), key=lambda f: len(zlib.compress(filtered[f], 1)))
    data = filtered[f]
    return min(bytes([f, DEFLATE]) + zlib.compress(data, 9),
               bytes([f, LZMA]) + lzma.compress(data, lzma.FORMAT_RAW, filters=_lzma_filters(plane.size)), key=len)


def _decompressed(payload: bytes, n: int) -> bytes:
    """The plane's n bytes, from a stream that must end exactly there; b"" when it does not."""
    try:
        if payload[1] == DEFLATE:
            stream = zlib.decompressobj()
        else:
            stream = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_lzma_filters(n))  # type: ignore[assignment]
        data = stream.decompress(payload[2:], n + 1)
    except (zlib.error, lzma.LZMAError):
        return b""
    return data if len(data) == n and stream.eof and not stream.unused_data else b""


def unpack_alpha(sections: dict[int, bytes], width: int, height: int) -> np.ndarray:
    """The alpha plane (uint8 H x W) of a file with one: section 7, or the zlib plane of
    section 3 that earlier versions wrote."""
    n = width * height
    if ALPHA2 in sections:
        payload = sections[ALPHA2]
        if len(payload) < 2 or payload[0] > 3 or payload[1] > LZMA:
            raise FormatError("alpha2 section is damaged (unknown filter or coder)")
        data = _decompressed(payload, n)
    else:
        stream = zlib.decompressobj()
        try:
            data = stream.decompress(sections.get(ALPHA, b""), n + 1)
        except zlib.error:
            data = b""
    if len(data) != n:
        raise FormatError("alpha section is damaged")
    plane = np.frombuffer(data, np.uint8).reshape(height, width)
    if ALPHA2 in sections:
        f = sections[ALPHA2][0]
        if f & 2:
            plane = np.cumsum(plane, axis=0, dtype=np.uint8)
        if f & 1:
            plane = np.cumsum(plane, axis=1, dtype=np.uint8)
    return plane
