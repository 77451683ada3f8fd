"""Image files <-> PIL images, atomic writes, and PIL images -> the pixels a file codes.

Reading applies the EXIF orientation, reduces 16-bit images to 8 bits and turns CMYK into
RGB (each with a notice); size limits are checked before any pixel is decoded. Writing picks
the format from the file's extension, among the formats this Pillow can write.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

DEFAULT_MAX_PIXELS = 2**28
# Formats an image may be decoded to; each only where this Pillow can write it (see writable_formats).
OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "TIFF", "BMP", "GIF", "PPM", "QOI", "JPEG2000", "TGA")
LOSSY = ("JPEG", "WEBP", "AVIF")  # the formats `quality` applies to
DEFAULT_OUTPUT_QUALITY = 90
_NEEDS = {"WEBP": "webp", "AVIF": "avif", "JPEG2000": "jpg_2000"}  # Pillow features behind a format
_METADATA = ("PNG", "JPEG", "WEBP", "AVIF", "TIFF")  # formats that carry ICC profile and EXIF
_NEAREST_MODES = {"L": ("L", "RGB"), "LA": ("LA", "RGBA", "L", "RGB"), "RGBA": ("RGBA", "RGB")}  # tried in order
# Files get the mode open() would give them (mkstemp's is 0600); read once, as threads write later.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class ImageError(ValueError):
    pass


def read_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS,
               notice: Callable[[str], None] = lambda s: None) -> Image.Image:
    if not data:
        raise ImageError(f"{name}: empty file")
    guard = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None  # checked below, against our own limit, before decoding
            try:
                opened = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = guard  # Pillow's guard for the rest of the process
            if opened.width * opened.height > max_pixels:
                raise ImageError(f"{name}: {opened.width}x{opened.height} exceeds the limit of {max_pixels} pixels")
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                notice(f"{name}: has {frames} frames; encoding the first")
            wide = any(";16" in str(tile.args) for tile in opened.tile)  # 16-bit RGB loads as 8-bit
            opened.load()
            image: Image.Image = opened
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageError(f"{name}: not a readable image ({e.__class__.__name__})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"{name}: cannot decode image ({e})") from None
    icc = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)  # also resets the EXIF orientation tag
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        samples = np.asarray(image, dtype=np.float64)
        wide = samples.max(initial=0) > 255
        if wide:
            samples = samples / 257
        image = Image.fromarray(np.clip(np.round(samples), 0, 255).astype(np.uint8), "L")
    if wide:
        notice(f"{name}: 16-bit samples reduced to 8 bits")
    if image.mode == "CMYK":
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
            rgb = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
            if rgb is not None:
                return rgb
        except Exception:  # a broken profile: fall back rather than refuse the image
            pass
    return image.convert("RGB")


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write via a temporary file in the same folder and a rename: never a half-written file.
    The file gets an overwritten file's mode, else the usual 0666 less the umask; errors name
    `path`, never the hidden temporary file."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (use -f to overwrite)")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_UMASK
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(f"cannot write {path}: {e.strerror}") from None
        raise


def writable_formats() -> dict[str, str]:
    """Extension -> format, for the output formats this Pillow build can write."""
    Image.init()
    usable = {f for f in OUTPUT_FORMATS if f in Image.SAVE and (f not in _NEEDS or features.check(_NEEDS[f]))}
    return {ext: fmt for ext, fmt in Image.registered_extensions().items()
            if fmt in usable and ext not in (".pbm", ".pgm", ".pfm")}  # Pillow writes any PPM the mode gives


def format_for(path: str) -> str:
    """The format a path's extension asks for ('-', stdout: PNG); ValueError if none can be written."""
    if path == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    formats = writable_formats()
    if ext not in formats:
        what = f"'{ext}' images" if ext else "an image without an extension"
        raise ValueError(f"{path}: cannot write {what} (formats: {', '.join(sorted(set(formats.values())))})")
    return formats[ext]


def image_bytes(image: Image.Image, fmt: str, quality: int = DEFAULT_OUTPUT_QUALITY,
                notice: Callable[[str], None] = lambda s: None) -> bytes:
    """Encode in `fmt`, in the image's mode where the format takes it, else the nearest it does
    (gray to RGB, and only as a last resort without alpha, with a notice)."""
    params = {key: image.info[key] for key in ("icc_profile", "exif") if image.info.get(key) and fmt in _METADATA}
    if fmt == "PNG":
        params["compress_level"] = 1  # photos: 7x faster than level 6, within a few % in size
    if fmt in LOSSY:
        params["quality"] = quality
    modes = _NEAREST_MODES.get(image.mode, (image.mode,))
    for mode in modes:
        buf = io.BytesIO()
        try:
            (image if image.mode == mode else image.convert(mode)).save(buf, format=fmt, **params)
            break
        except (OSError, ValueError):
            if mode == modes[-1]:
                raise
    if "A" in image.mode and "A" not in mode:
        notice(f"{fmt} has no alpha channel: transparency dropped")
    return buf.getvalue()


def read_input(path: str) -> bytes:
    """The bytes of a file, or of stdin for '-'; errors name the path the user gave."""
    if path == "-":
        return sys.stdin.buffer.read()
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    try:
        return p.read_bytes()
    except OSError as e:
        raise type(e)(f"cannot read {path}: {e.strerror}") from None


def read_input_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS,
                     notice: Callable[[str], None] = lambda s: None) -> tuple[bytes, Image.Image]:
    """The bytes of a file (or of stdin for '-') and the image they hold: the bytes too, as
    the commands report the input's size."""
    raw = read_input(path)
    return raw, read_image(raw, path, max_pixels, notice=notice)


@dataclass(frozen=True)
class Source:
    """An image ready for coding: RGB pixels, the mode to restore, alpha and ICC profile."""

    rgb: np.ndarray  # uint8 (H, W, 3)
    mode: str
    alpha: np.ndarray | None
    icc_profile: bytes | None
    exif: bytes | None = None

    @property
    def pixels(self) -> int:
        return self.rgb.shape[0] * self.rgb.shape[1]


def prepare(image: Image.Image | np.ndarray, icc_profile: bytes | None = None) -> Source:
    rgb, mode, alpha = to_pixels(image)
    info = image.info if isinstance(image, Image.Image) else {}
    exif = info.get("exif")
    return Source(rgb, mode, alpha, icc_profile or info.get("icc_profile"),
                  exif if isinstance(exif, bytes) and exif else None)


def to_pixels(image: Image.Image | np.ndarray) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Any PIL image or uint8 array -> (RGB uint8 HxWx3, mode to restore, alpha or None)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError("pixel arrays must be uint8")
        image = Image.fromarray(image)
    mode = image.mode
    alpha = None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        gray = mode == "LA"
        rgb = np.asarray(rgba.convert("L").convert("RGB") if gray else rgba.convert("RGB"))
        return rgb, "LA" if gray else "RGBA", alpha
    if mode in ("L", "1", "I;16", "I", "F"):
        return np.asarray(image.convert("L").convert("RGB")), "L", None
    return np.asarray(image if mode == "RGB" else image.convert("RGB")), "RGB", None
