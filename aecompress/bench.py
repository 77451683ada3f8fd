"""Codecs under test and rate-distortion sweeps -> JSON (CompressAI's columnar schema).

Every number comes from bytes produced in this run: each setting of each codec encodes every
image, the encoded file is written to disk, bpp = file bytes x 8 / pixels (headers included),
and the decoded pixels are compared with the original (PSNR on 8-bit RGB, MS-SSIM), averaged
per image. Times are per image, warm (each codec first runs once on a small crop), the median
of repeats. Plots and the report are drawn from these JSON files only (see plot.py).
"""

from __future__ import annotations

import inspect
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
from PIL import Image

from . import extras, metrics, zoo
from .peers import QUALITIES, Codec, aecompress_codec, load_images, pillow_codecs, write_json

for _module in ("scipy", "matplotlib"):  # the report needs them: fail now, not after measuring
    extras.require(_module, "bench", "aecompress bench")
torch = extras.require("torch", "bench", "aecompress bench")  # its thread count, the encoder search

SEARCH_EFFORT = 2  # the slower aecompress curve, aecompress-e2 (encode --effort 2)
REPEAT_BELOW_S = 1.0  # slower calls are timed once: their run-to-run spread is small anyway
REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "published_kodak_rd.json"


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
