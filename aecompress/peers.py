"""The codecs under test: aecompress through its public API, and the classic codecs as Pillow
ships them (libjpeg-turbo, libwebp, libavif, OpenJPEG); the images they code; their JSON."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

from . import codec, zoo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
QUALITIES = (1, 10, 20, 35, 50, 65, 80, 90, 100)

@dataclass(frozen=True)
class Codec:
    """One codec under test: a name (the JSON file name), its settings and a byte-level round trip."""

    name: str
    description: str
    settings: tuple[float, ...]
    ext: str
    encode: Callable[[Image.Image, float], bytes]
    decode: Callable[[bytes], np.ndarray]


def _pillow(fmt: str, **fixed) -> tuple[Callable, Callable]:
    def encode(image: Image.Image, setting: float) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **fixed, **_setting_args(fmt, setting))
        return buf.getvalue()

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    return encode, decode


def _setting_args(fmt: str, setting: float) -> dict:
    if fmt == "JPEG2000":  # setting = target bpp; OpenJPEG takes a compression ratio of 24-bit RGB
        return {"quality_mode": "rates", "quality_layers": [24.0 / setting]}
    return {"quality": int(setting)}


def pillow_codecs(threads: int = 1, quick: bool = False) -> list[Codec]:
    """The classic codecs as Pillow ships them (libjpeg-turbo, libwebp, libavif, OpenJPEG)."""
    steps = lambda full: tuple(full[::2]) if quick else tuple(full)
    jpeg_q = range(5, 100, 10)
    out = [
        Codec("jpeg", f"Pillow {PIL.__version__} JPEG (libjpeg-turbo {features.version('jpg')}), "
              "default 4:2:0, quality 5..95", steps(jpeg_q), "jpg", *_pillow("JPEG")),
        Codec("jpeg444", "Pillow JPEG 4:4:4, optimize=True (Huffman tables per image), quality 5..95",
              steps(jpeg_q), "jpg", *_pillow("JPEG", subsampling=0, optimize=True)),
        Codec("webp", f"Pillow WebP (libwebp {features.version('webp')}), default method 4, quality 5..95",
              steps(jpeg_q), "webp", *_pillow("WEBP")),
    ]
    if features.check("avif"):
        out += [
            Codec("avif", f"Pillow AVIF (libavif {features.version('avif')}), default speed 6, 4:2:0, "
                  f"{threads} thread(s)", steps((5, 15, 25, 35, 45, 55, 65, 75)), "avif",
                  *_pillow("AVIF", speed=6, max_threads=threads)),
            Codec("avif-s0", "Pillow AVIF, slowest speed 0 (about 15 s an image), 4:2:0",
                  (25, 55) if quick else (10, 25, 40, 55, 70), "avif", *_pillow("AVIF", speed=0, max_threads=threads)),
        ]
    if features.check("jpg_2000"):
        out.append(Codec("jpeg2000", f"Pillow JPEG 2000 (OpenJPEG {features.version('jpg_2000')}), 9/7 "
                         "wavelet, one layer at a target rate (setting = target bpp)",
                         steps((0.1, 0.15, 0.25, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0)), "jp2",
                         *_pillow("JPEG2000", irreversible=True)))
    return out


def aecompress_codec(model: zoo.CodingModel, qualities: Sequence[float], effort: int = 0) -> Codec:
    """aecompress through its public API: .aec bytes in, pixels out."""
    return Codec(
        f"aecompress-e{effort}" if effort else "aecompress",
        f"aecompress, model {model.name} ({model.digest.hex()}), quality = -q, --effort {effort}",
        tuple(float(q) for q in qualities), "aec",
        lambda image, q: codec.encode(image, q, model=model, effort=effort),
        lambda data: np.asarray(codec.decode(data, model=model).convert("RGB")),
    )


def load_images(folder: str | Path, limit: int | None = None) -> list[tuple[str, Image.Image]]:
    """All images of a folder (sorted by name), as RGB."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for p in files:
        with Image.open(p) as im:
            images.append((p.name, im.convert("RGB")))
    return images


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)
