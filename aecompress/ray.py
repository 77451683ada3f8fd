"""Whole collections on a Ray cluster: `encode/decode ... -d OUT --ray [ADDRESS]`, on Ray Data.

    folders, globs, fsspec URLs --list--> rows (path, name)
      --map_batches(Encoder | Decoder, an actor pool: the model loads once per actor)-->
      OUT/name (a temporary file in OUT/.aecompress-tmp, then a rename) and a row per file
      --driver--> OUT/manifest.jsonl: path, output, bytes in/out, bpp, quality, psnr, status, error

This module holds what runs on the workers: the callable classes Encoder and Decoder. Each file
is coded by the functions `aecompress encode` and `decode` use, with numpy on the CPU, so a file
made on the cluster is byte-identical to one made on one machine. A bad file becomes a row with
its error. The command's side (listing, the manifest, the actor pool) is ray_job.py. In a
pipeline of one's own, `ds.map_batches(aecompress.ray.Encoder, ...)` (README, "Past one machine").
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .image import DEFAULT_MAX_PIXELS, DEFAULT_OUTPUT_QUALITY, image_bytes, read_image

TMP_DIR = ".aecompress-tmp"  # in OUT: temporary files, and the journal of the job that runs
FIELDS = ("path", "output", "bytes_in", "bytes_out", "width", "height", "bpp", "quality", "psnr",
          "status", "error", "notes", "seconds")
_UMASK = os.umask(0o022)  # outputs get the mode open() would give them, as image.write_atomic's do
os.umask(_UMASK)


class _Coder:
    """What Encoder and Decoder share. A batch (a pandas DataFrame or a dict of numpy arrays)
    with a `bytes` or a `path` column (a local path or fsspec URL) comes in; one row per file
    goes out, in the same format, a failure as a row with its one-line error. With out_dir each
    output is written to out_dir/name (the `name` column, else the input's name) and `output`
    holds the name; without, the `column` column holds its bytes."""

    column = suffix = ""

    def __init__(self, out_dir: str | None):
        self.out_dir = Path(out_dir) if out_dir else None

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        raise NotImplementedError

    def __call__(self, batch):
        import pandas as pd

        table = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame(dict(batch))
        rows = pd.DataFrame([self._one(row) for row in table.to_dict("records")])
        return rows if isinstance(batch, pd.DataFrame) else {k: rows[k].to_numpy() for k in rows}

    def _one(self, row: dict) -> dict:
        start, path = time.perf_counter(), str(row.get("path") or "")
        notes: list[str] = []
        result = dict.fromkeys(FIELDS) | {"path": path, "status": "ok"}
        if self.out_dir is None:
            result[self.column] = None
        try:
            raw = bytes(row["bytes"]) if row.get("bytes") is not None else _read(path)
            result["bytes_in"] = len(raw)
            data, fields = self.code(raw, path or "image", notes.append)
            result.update(fields, bytes_out=len(data))
            if self.out_dir is None:
                result[self.column] = data
            else:
                name = str(row.get("name") or output_name(posixpath.basename(path), self.suffix))
                publish(self.out_dir, name, data)
                result["output"] = name
        except Exception as e:  # a bad file is a row of the manifest, never the end of the job
            message = (str(e).splitlines() or [""])[0]
            known = isinstance(e, (ValueError, OSError, LookupError))
            result.update(status="error", output=None, error=message if known else f"{type(e).__name__}: {message}")
        result.update(notes="; ".join(notes) or None, seconds=round(time.perf_counter() - start, 3))
        return result


class Encoder(_Coder):
    """Images (file bytes or paths) -> .aec files, exactly as `aecompress encode` makes them.
    The command's options: quality or target (("size", 20000), ("bpp", 0.5) or ("psnr", 34)),
    effort, denoise, strip, verify (fills psnr), model, device, max_pixels."""

    column, suffix = "aec", ".aec"

    def __init__(self, quality: float | None = None, target: tuple[str, float] | None = None, effort: int = 0,
                 denoise: float | str | None = None, strip: bool = False, verify: bool = False,
                 model: str | None = None, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 out_dir: str | None = None):
        from . import ratecontrol, zoo

        super().__init__(out_dir)
        self.model = zoo.load(model)
        self.quality, self.effort, self.denoise, self.strip, self.verify = quality, effort, denoise, strip, verify
        self.target = ratecontrol.Target(*target) if target else None
        self.device, self.max_pixels = device, max_pixels

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        from . import codec, ratecontrol

        image = read_image(raw, name, self.max_pixels, notice=notice)
        if self.strip:
            image.info.pop("icc_profile", None)
            image.info.pop("exif", None)
        if self.target:
            result = ratecontrol.encode_to_target(image, self.target, self.model, self.device, self.denoise)
            if not result.reached:
                raise ValueError(f"{name}: --target-{self.target.kind} {self.target.value:g} is out of reach "
                                 f"(nearest at quality {result.quality:g}: {len(result.data)} bytes)")
            data, quality = result.data, result.quality
        else:
            quality = codec.DEFAULT_QUALITY if self.quality is None else self.quality
            data = codec.encode(image, quality, model=self.model, device=self.device, denoise=self.denoise,
                                effort=self.effort)
        w, h = image.size
        fields = {"width": w, "height": h, "bpp": round(len(data) * 8 / (w * h), 5),
                  "quality": round(float(quality), 2)}
        if self.verify:  # as encode --verify: the decoded file against the image encoded
            import numpy as np

            from .metrics import psnr

            mode = image.mode if image.mode in ("L", "RGB") else "RGB"
            back = codec.decode(data, model=self.model, device=self.device)
            fields["psnr"] = round(psnr(np.asarray(image.convert(mode)), np.asarray(back.convert(mode))), 3)
        return data, fields


class Decoder(_Coder):
    """.aec files (bytes or paths) -> images in `format` (PNG), exactly as `aecompress decode`
    writes them; quality: that of a JPEG, WebP or AVIF output."""

    column, suffix = "image", ".png"

    def __init__(self, format: str = "PNG", quality: int | None = None, model: str | None = None,
                 device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS, out_dir: str | None = None):
        from . import zoo

        super().__init__(out_dir)
        zoo.load(model or zoo.default_model_name())  # once per actor: zoo keeps it for the files
        self.format, self.quality, self.model, self.device, self.max_pixels = format, quality, model, device, max_pixels
        self.suffix = "." + format.lower()

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        from . import codec, container

        try:
            image = codec.decode(raw, model=self.model, device=self.device, max_pixels=self.max_pixels)
        except codec.DecodeError as e:
            raise ValueError(f"{name}: {e}") from None
        data = image_bytes(image, self.format, self.quality or DEFAULT_OUTPUT_QUALITY, notice)
        (w, h), quality = image.size, container.unpack(raw).header.quality
        return data, {"width": w, "height": h, "bpp": round(len(raw) * 8 / (w * h), 5), "quality": quality}


def _read(path: str) -> bytes:
    import fsspec

    if not path:
        raise ValueError("a row needs a 'bytes' or a 'path' column")
    with fsspec.open(path, "rb") as f:
        return f.read()


def publish(out_dir: Path, name: str, data: bytes) -> None:
    """Write out_dir/name through a temporary file in out_dir/TMP_DIR and a rename: nothing
    half-written is ever visible in out_dir, and what a killed worker leaves is in one place."""
    path = out_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    (out_dir / TMP_DIR).mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=out_dir / TMP_DIR)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def output_name(relative: str, suffix: str) -> str:
    return str(PurePosixPath(relative).with_suffix(suffix))
