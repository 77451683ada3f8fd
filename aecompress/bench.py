"""Codecs under test and rate-distortion sweeps -> JSON (CompressAI's columnar schema).

Every number comes from bytes produced in this run: each setting of each codec encodes every
image, the encoded file is written to disk, bpp = file bytes x 8 / pixels (headers included),
and the decoded pixels are compared with the original (PSNR on 8-bit RGB, MS-SSIM), averaged
per image. Times are per image, warm (each codec first runs once on a small crop), the median
of repeats. Plots and the report are drawn from these JSON files only (see plot.py).
"""

from __future__ import annotations

import inspect
import io
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

from . import codec, extras, metrics, zoo

for _module in ("scipy", "matplotlib"):  # the report needs them: fail now, not after measuring
    extras.require(_module, "bench", "aecompress bench")
torch = extras.require("torch", "bench", "aecompress bench")  # its thread count, the encoder search

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
QUALITIES = (1, 10, 20, 35, 50, 65, 80, 90, 100)
SEARCH_EFFORT = 2  # the slower aecompress curve, aecompress-e2 (encode --effort 2)
REPEAT_BELOW_S = 1.0  # slower calls are timed once: their run-to-run spread is small anyway
REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "published_kodak_rd.json"


@dataclass(frozen=True)
class Codec:
    """One codec under test: a name (the JSON file name), its settings and a byte-level round trip."""

    name: str
    description: str
    settings: tuple[float, ...]
    ext: str
    encode: Callable[[Image.Image, float], bytes]
    decode: Callable[[bytes], np.ndarray]


@dataclass(frozen=True)
class Sweep:
    """Per-image measurements of one codec: rows are settings, columns are images."""

    codec: Codec
    images: tuple[str, ...]
    pixels: tuple[int, ...]
    nbytes: np.ndarray
    psnr: np.ndarray
    ms_ssim: np.ndarray
    enc_s: np.ndarray
    dec_s: np.ndarray

    def to_json(self) -> dict:
        bpp = self.nbytes * 8 / np.array(self.pixels)[None, :]
        mean = lambda a: [float(v) for v in a.mean(axis=1)]
        return {
            "name": self.codec.name,
            "description": self.codec.description,
            "results": {"quality": list(self.codec.settings), "bpp": mean(bpp), "psnr-rgb": mean(self.psnr),
                        "ms-ssim-rgb": mean(self.ms_ssim), "encoding_time": mean(self.enc_s),
                        "decoding_time": mean(self.dec_s)},
            "images": list(self.images),
            "pixels": list(self.pixels),
            "per_image": {"bytes": self.nbytes.astype(int).tolist(), "psnr-rgb": self.psnr.tolist(),
                          "ms-ssim-rgb": self.ms_ssim.tolist(), "encoding_time": self.enc_s.tolist(),
                          "decoding_time": self.dec_s.tolist()},
        }


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


def timed(fn: Callable, arg, repeats: int):
    """(result, median seconds) of fn(arg); slow calls are not repeated."""
    start = time.perf_counter()
    result = fn(arg)
    times = [time.perf_counter() - start]
    if times[0] < REPEAT_BELOW_S:
        for _ in range(repeats - 1):
            start = time.perf_counter()
            fn(arg)
            times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def sweep(c: Codec, images: list[tuple[str, Image.Image]], files_dir: Path, repeats: int = 3,
          progress: Callable[[str], None] = lambda s: None) -> Sweep:
    """Encode every image at every setting, write the files, decode them, measure."""
    warm = images[0][1].crop((0, 0, min(64, images[0][1].width), min(64, images[0][1].height)))
    c.decode(c.encode(warm, c.settings[len(c.settings) // 2]))
    shape = (len(c.settings), len(images))
    nbytes, psnr, msssim, enc_s, dec_s = (np.zeros(shape) for _ in range(5))
    (files_dir / c.name).mkdir(parents=True, exist_ok=True)
    for i, setting in enumerate(c.settings):
        for j, (name, image) in enumerate(images):
            data, enc_s[i, j] = timed(lambda im: c.encode(im, setting), image, repeats)
            path = files_dir / c.name / f"{Path(name).stem}@{setting:g}.{c.ext}"
            path.write_bytes(data)
            back, dec_s[i, j] = timed(c.decode, path.read_bytes(), repeats)
            original = np.asarray(image)
            nbytes[i, j] = path.stat().st_size
            psnr[i, j] = metrics.psnr(original, back)
            msssim[i, j] = metrics.ms_ssim(original, back)
        progress(f"{c.name} {setting:g}: {nbytes[i].sum() * 8 / sum(im.width * im.height for _, im in images):.3f}"
                 f" bpp, {psnr[i].mean():.2f} dB")
    return Sweep(c, tuple(n for n, _ in images), tuple(im.width * im.height for _, im in images),
                 nbytes, psnr, msssim, enc_s, dec_s)


@dataclass(frozen=True)
class RunSummary:
    """What `aecompress bench` prints: where the results are and the headline BD-rate."""

    results_dir: Path
    codecs: tuple[str, ...]
    images: int
    bd_rate_vs_jpeg: float | None
    report: Path | None


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def run(*args, **kwargs) -> RunSummary:
    """The whole benchmark (`_run`, same arguments) with torch at its `threads`, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(inspect.signature(_run).bind(*args, **kwargs).arguments.get("threads", 1))
    try:
        return _run(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def _run(data_dir: str | Path, out: str | Path = "benchmarks", model: str | None = None,
        qualities: Sequence[float] = QUALITIES, quick: bool = False, codecs: Sequence[str] | None = None,
        threads: int = 1, repeats: int = 3, keep_files: str | Path | None = None, extras: bool = True,
        report: bool = True, record: bool = False,
        progress: Callable[[str], None] = lambda s: None) -> RunSummary:
    """The whole benchmark: sweeps, extras (sparsity, crops, speed, memory), then plots and report.

    Earlier JSON in the same results folder is removed first, so everything drawn comes from this run.
    `record` writes the model's figures into weights/manifest.json (a full run of every codec only).
    """
    from . import bench_extras

    m = zoo.load(model)
    images = load_images(data_dir, 3 if quick else None)
    if quick:
        qualities, repeats = tuple(qualities)[:: max(1, len(qualities) // 3)], 1
    out = Path(out)
    results = out / "results" / Path(data_dir).resolve().name
    chosen = [aecompress_codec(m, qualities), aecompress_codec(m, qualities, SEARCH_EFFORT)]
    chosen += pillow_codecs(threads, quick)
    if codecs:
        unknown = set(codecs) - {c.name for c in chosen}
        if unknown:
            raise ValueError(f"unknown codec(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(c.name for c in chosen)})")
        chosen = [c for c in chosen if c.name in codecs]
    for stale in results.glob("*.json"):  # a report must never mix this run with an older one
        stale.unlink()
    shutil.rmtree(results / "crops", ignore_errors=True)
    files_dir = Path(keep_files) if keep_files else Path(tempfile.mkdtemp(prefix="aec-bench-"))
    try:
        for c in chosen:
            write_json(results / f"{c.name}.json", sweep(c, images, files_dir, repeats, progress).to_json())
        write_json(results / "run.json", {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "data": str(data_dir),
            "images": len(images), "quick": quick, "torch_threads": threads, "repeats": repeats,
            "machine": " ".join(filter(None, (platform.machine(), _cpu_name(), f"{os.cpu_count()} CPUs"))),
            "python": platform.python_version(), "torch": torch.__version__, "pillow": PIL.__version__,
            "model": m.name, "model_digest": m.digest.hex(), "model_metadata": m.metadata,
        })
        if extras and any(c.name == "aecompress" for c in chosen):
            bench_extras.run_all(m, model, images, files_dir, results, threads, quick, progress)
            from .compare import bench_pages  # a page to look at, linked from the report

            write_json(results / "compare.json", bench_pages(m, data_dir, [n for n, _ in images], out))
            progress("extras: comparison pages")
    finally:
        if not keep_files:
            shutil.rmtree(files_dir, ignore_errors=True)
    if REFERENCE.exists():
        (out / "reference").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REFERENCE, out / "reference" / REFERENCE.name)
    if record:
        if quick or (codecs and "jpeg" not in codecs):
            raise ValueError("only a full run with JPEG (no --quick) is recorded in the manifest")
        bench_extras.record_in_manifest(m, results)
    report_path = None
    if report:
        from . import plot

        report_path = plot.render(out, results)
    return RunSummary(results, tuple(c.name for c in chosen), len(images),
                      _bd_vs_jpeg(results), report_path)


def _bd_vs_jpeg(results: Path) -> float | None:
    try:
        ours, jpeg = (json.loads((results / f"{n}.json").read_text())["results"] for n in ("aecompress", "jpeg"))
    except (OSError, KeyError):
        return None
    return metrics.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], ours["bpp"], ours["psnr-rgb"])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
