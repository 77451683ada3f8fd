"""Pillow integration: after `import aecompress`, Image.open("x.aec") decodes and
img.save("x.aec", quality=80) encodes (default model and quality unless given).

Registering imports neither torch nor constriction: the codec is imported when an .aec file
is first decoded or saved, so `import aecompress` stays fast.
"""

from __future__ import annotations

from PIL import Image, ImageFile

from . import container


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class AecImageFile(ImageFile.ImageFile):
    format = "AEC"
    format_description = "aecompress learned image codec"

    def _open(self) -> None:
        self._aec = self.fp.read()
        try:
            header = container.unpack(self._aec).header
        except container.FormatError as e:
            raise SyntaxError(str(e)) from None
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info["quality"] = header.quality
        self.tile = []

    def load(self):
        if self._aec is not None:
            from . import codec

            image = codec.decode(self._aec)
            self.im = image.im
            self.info.update(image.info)
            self._aec = None
        return Image.Image.load(self)


def _save(im: Image.Image, fp, filename) -> None:
    from . import codec

    info = im.encoderinfo
    fp.write(codec.encode(im, info.get("quality", codec.DEFAULT_QUALITY), model=info.get("model"),
                          icc_profile=info.get("icc_profile")))


Image.register_open(AecImageFile.format, AecImageFile, _accept)
Image.register_save(AecImageFile.format, _save)
Image.register_extension(AecImageFile.format, ".aec")
Image.register_mime(AecImageFile.format, "image/x-aec")
