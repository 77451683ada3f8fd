"""aecompress: a learned image codec whose files decode the same on every machine.

    import aecompress
    data = aecompress.encode(Image.open("photo.png"), quality=75)   # -> bytes (.aec)
    data = aecompress.encode("photo.png")                           # or a path, bytes, a file object
    image = aecompress.decode(data)                                 # -> PIL.Image
    image = aecompress.decode("photo.aec")                          # or a path, a file object

`import aecompress` imports no torch (about 3 s): the codec is imported on first use.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from . import pillow_plugin  # noqa: F401  (registers .aec with Pillow, without importing the codec)

__all__ = ["encode", "decode", "load_model", "DecodeError"]
__version__ = "0.1.0"


def _is_file(source: Any) -> bool:
    return isinstance(source, (bytes, bytearray, memoryview, str, os.PathLike)) or hasattr(source, "read")


def _read(source: Any) -> bytes:
    """The bytes of a path (str or os.PathLike), of a binary file object, or bytes themselves."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    if isinstance(source, io.TextIOBase):
        raise TypeError("open the file in binary mode ('rb')")
    if hasattr(source, "read"):
        return bytes(source.read())
    raise TypeError(f"expected bytes, a path or a binary file object, not {type(source).__name__}")


def encode(image: Any, quality: float | None = None, **options: Any):
    """Compress an image into .aec bytes. `image`: a PIL image, a uint8 array (H, W) or (H, W,
    3 or 4), or an image file as a path, bytes or binary file object, read as the command line
    reads it (EXIF orientation applied, 16-bit reduced to 8, CMYK to RGB). quality: 1..100
    (default codec.DEFAULT_QUALITY); options: model, device, icc_profile, denoise, effort,
    latents_for (see codec.encode)."""
    from . import codec
    from .image import read_image

    if _is_file(image):
        image = read_image(_read(image), str(image) if isinstance(image, (str, os.PathLike)) else "image")
    return codec.encode(image, codec.DEFAULT_QUALITY if quality is None else quality, **options)


def decode(data: Any, **options: Any):
    """Decompress an .aec file into a PIL image in the mode it was encoded from. `data`: bytes,
    a path or a binary file object; options: model, device, max_pixels (see codec.decode)."""
    from . import codec

    return codec.decode(_read(data), **options)


def __getattr__(name: str) -> Any:
    """load_model and DecodeError live in modules that import torch: imported when first asked for."""
    if name == "load_model":
        from .zoo import load

        return load
    if name == "DecodeError":
        from .codec import DecodeError

        return DecodeError
    raise AttributeError(f"module 'aecompress' has no attribute {name!r}")
