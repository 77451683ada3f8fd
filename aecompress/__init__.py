"""aecompress: a learned image codec whose files decode the same on every machine.

    import aecompress
    data = aecompress.encode(Image.open("photo.png"), quality=75)   # -> bytes (.aec)
    image = aecompress.decode(data)                                 # -> PIL.Image
"""

from . import pillow_plugin  # noqa: F401  (registers .aec with Pillow)
from .codec import DecodeError, decode, encode
from .zoo import load as load_model

__all__ = ["encode", "decode", "load_model", "DecodeError"]
__version__ = "0.1.0"
