"""Image files <-> PIL images, and atomic writes.

Reading applies the EXIF orientation, reduces 16-bit images to 8 bits and turns CMYK into
RGB (each with a notice); size limits are checked before any pixel is decoded.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 2**28


class ImageError(ValueError):
    pass


def read_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS,
               notice: Callable[[str], None] = lambda s: None) -> Image.Image:
    if not data:
        raise ImageError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # checked below, against our own limit, before decoding
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise ImageError(f"{name}: {image.width}x{image.height} exceeds the limit of {max_pixels} pixels")
            if getattr(image, "n_frames", 1) > 1:
                notice(f"{name}: has {image.n_frames} frames; encoding the first")
            if any(";16" in str(tile.args) for tile in image.tile):
                notice(f"{name}: 16-bit samples reduced to 8 bits")
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: not a readable image ({e.__class__.__name__})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot decode image ({e})") from None
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)  # also resets the EXIF orientation tag
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        wide = np.asarray(image, dtype=np.float64)
        if wide.max(initial=0) > 255:
            notice(f"{name}: 16-bit samples reduced to 8 bits")
            wide = wide / 257
        image = Image.fromarray(np.clip(np.round(wide), 0, 255).astype(np.uint8), "L")
    elif image.mode == "CMYK":
        notice(f"{name}: CMYK converted to RGB")
        image, icc = _cmyk_to_rgb(image, icc), None
    if icc:
        image.info["icc_profile"] = icc
    return image


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Through the embedded CMYK profile into sRGB when there is one, else Pillow's formula."""
    if icc:
        try:
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:  # a broken profile: fall back rather than refuse the image
            pass
    return image.convert("RGB")


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write via a temporary file in the same folder and a rename: never a half-written file."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use -f to overwrite)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    params = {}
    for key in ("icc_profile", "exif"):
        if image.info.get(key) and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
            params[key] = image.info[key]
    if fmt == "PNG":
        params["compress_level"] = 1  # photos: 7x faster than level 6, within a few % in size
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def format_for(path: str) -> str:
    ext = Path(path).suffix.lower()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
               ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM"}
    return formats.get(ext, "PNG")


def read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    return p.read_bytes()
