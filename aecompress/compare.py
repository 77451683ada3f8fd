"""One self-contained HTML page that shows aecompress beside JPEG, WebP and AVIF at the same file size.

    photo --aecompress (-q, or --size/--bpp by rate control)--> N bytes
          --JPEG, WebP, AVIF: each the highest quality whose file fits N bytes--> decoded pixels
          --PNG data URIs + stats--> compare.html (compare_page.py, .html, .css and .js)

Every picture on the page is a lossless PNG of pixels a decoder gave (or of the original). An
image of at most LARGE pixels is embedded whole. A larger one is embedded twice over, so that a
24 MP photo gives a page of a few times its files' size rather than 5 x 70 MB: at Fit, each
codec's decoded image downscaled to PREVIEW pixels a side; at 1:1 and 4x, REGIONS crops of
CROP x CROP at full resolution, the most detailed windows of the original and one smooth one
(sky, gradients: where banding and blocking show).
"""

from __future__ import annotations

import base64
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

from . import codec, extras, metrics, zoo
from .compare_page import render

extras.require("scipy", "bench", "aecompress compare (MS-SSIM)")  # fail before coding, not after

LARGE = 2_000_000  # pixels: above this, a preview and crops instead of the whole image
PREVIEW = 800  # the longest side of the Fit preview of a large image (5 PNGs of 0.4 MP: about 6 MB)
CROP, REGIONS = 512, 4  # crop side and count of a large image's regions
MS_SSIM_SIDE = 161  # the smallest side metrics.ms_ssim takes: (11 - 1) x 2^4 + 1, its window over 5 scales


@dataclass(frozen=True)
class PillowCodec:
    """A classic codec as Pillow writes it, searched over its integer quality lo..hi."""

    key: str
    label: str
    fmt: str
    lo: int
    hi: int
    options: dict

    def encode(self, image: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, self.fmt, quality=quality, **self.options)
        return buf.getvalue()


def pillow_codecs() -> list[PillowCodec]:
    """JPEG (4:2:0, optimized Huffman tables), WebP (method 4) and AVIF (speed 6) where this Pillow has it."""
    found = [PillowCodec("jpeg", f"JPEG (libjpeg-turbo {features.version('jpg')}, 4:2:0, optimize)", "JPEG", 1, 100,
                         {"optimize": True})]
    if features.check("webp"):
        found.append(PillowCodec("webp", f"WebP (libwebp {features.version('webp')}, method 4)", "WEBP", 0, 100, {}))
    if features.check("avif"):
        found.append(PillowCodec("avif", f"AVIF (libavif {features.version('avif')}, speed 6, 4:2:0)", "AVIF", 0, 100,
                                 {"speed": 6}))
    return found


@dataclass(frozen=True)
class Coded:
    """One codec's result on the page: its file's numbers and the pixels its decoder gave."""

    key: str
    label: str
    setting: str
    nbytes: int
    psnr: float | None
    ms_ssim: float | None
    encode_s: float | None
    decode_s: float | None
    pixels: np.ndarray
    fits: bool = True  # False: even its lowest quality is larger than aecompress's file


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Page:
    html: str
    coded: tuple[Coded, ...]
    regions: tuple[Box, ...]  # one box, the whole image, unless the image is larger than LARGE
    preview: tuple[int, int] | None  # (w, h) of the Fit preview of a large image


def _timed(fn: Callable[[], object]) -> tuple:
    """(fn(), seconds it took)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def highest_fitting(encode: Callable[[int], bytes], lo: int, hi: int, budget: int) -> tuple[int, bytes]:
    """The highest integer quality in lo..hi whose file is at most budget bytes, by bisection (file
    size rises with quality), and its file; lo's file when none fits."""
    best = (lo, encode(lo))
    if len(best[1]) > budget:
        return best
    while lo < hi:
        mid = (lo + hi + 1) // 2
        data = encode(mid)
        if len(data) <= budget:
            lo, best = mid, (mid, data)
        else:
            hi = mid - 1
    return best


def _ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM on RGB (one channel at a time, a third of the memory on 24 MP), None on small images."""
    if min(a.shape[:2]) < MS_SSIM_SIDE:
        return None
    return float(np.mean([metrics.ms_ssim(a[..., c], b[..., c]) for c in range(3)]))


def _coded(key: str, label: str, setting: str, data: bytes, enc_s: float, decode: Callable[[bytes], np.ndarray],
           rgb: np.ndarray, fits: bool = True) -> Coded:
    back, dec_s = _timed(lambda: decode(data))
    return Coded(key, label, setting, len(data), metrics.psnr(rgb, back), _ms_ssim(rgb, back), enc_s, dec_s,
                 back, fits)


def code_all(rgb: np.ndarray, model: zoo.CodingModel, quality: float | None = None, size: int | None = None,
             bpp: float | None = None, progress: Callable[[str], None] = lambda s: None) -> list[Coded]:
    """aecompress at -q (or at a --size/--bpp target), then each Pillow codec at its highest quality
    that fits the aecompress file. Times are of one encode at the chosen setting, one decode."""
    found = None
    if size is not None or bpp is not None:
        from .ratecontrol import Target, encode_to_target

        target = Target("size", size) if size is not None else Target("bpp", bpp)
        found = encode_to_target(rgb, target, model)
        if not found.reached:
            raise ValueError(f"--{'size' if size is not None else 'bpp'} {target.value:g} is out of reach: the "
                             f"smallest aecompress file is {len(found.data)} bytes")
        quality = found.quality
    quality = codec.DEFAULT_QUALITY if quality is None else quality
    data, enc_s = _timed(lambda: codec.encode(rgb, quality, model=model))  # the time of `encode -q`
    data = found.data if found else data  # the file rate control made (its search is not timed)
    decode_aec = lambda d: np.asarray(codec.decode(d, model=model).convert("RGB"))
    out = [_coded("aecompress", "aecompress", f"q {quality:g}", data, enc_s, decode_aec, rgb)]
    progress(f"aecompress q {quality:g}: {len(data)} bytes")
    image = Image.fromarray(rgb)
    decode_pillow = lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("RGB"))
    for c in pillow_codecs():
        q, _ = highest_fitting(lambda q: c.encode(image, q), c.lo, c.hi, len(data))
        theirs, enc_s = _timed(lambda: c.encode(image, q))
        out.append(_coded(c.key, c.label, f"q {q}", theirs, enc_s, decode_pillow, rgb, len(theirs) <= len(data)))
        progress(f"{c.key} q {q}: {len(theirs)} bytes")
    return out


def detail_regions(rgb: np.ndarray, size: int = CROP, count: int = REGIONS, cell: int = 32) -> list[Box]:
    """count - 1 non-overlapping size x size windows with the most detail (the sum of absolute
    differences of neighbouring pixels), then one smooth window (the 10th percentile of detail)."""
    h, w = rgb.shape[:2]
    size = min(size, h, w)  # a panorama's regions are as tall as it is
    cell = max(1, min(cell, size))
    gray = rgb.astype(np.float32).mean(axis=2)
    detail = np.zeros((h, w), np.float32)
    detail[:, 1:] += np.abs(np.diff(gray, axis=1))
    detail[1:, :] += np.abs(np.diff(gray, axis=0))
    gh, gw = h // cell, w // cell
    cells = detail[: gh * cell, : gw * cell].reshape(gh, cell, gw, cell).sum(axis=(1, 3))
    k = size // cell
    acc = np.pad(cells.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = acc[k:, k:] - acc[:-k, k:] - acc[k:, :-k] + acc[:-k, :-k]  # windows[i, j]: cells i..i+k, j..j+k
    free = np.ones(windows.shape, bool)
    picks = []
    for n in range(count):
        scores = np.where(free, windows, np.nan)
        if np.isnan(scores).all():
            break
        if n < count - 1:
            flat = int(np.nanargmax(scores))
        else:
            flat = int(np.nanargmin(np.abs(scores - np.nanpercentile(scores, 10))))
        i, j = divmod(flat, windows.shape[1])
        picks.append(Box(min(j * cell, w - size), min(i * cell, h - size), size, size))
        free[max(0, i - k + 1): i + k, max(0, j - k + 1): j + k] = False  # no overlap with this window
    return picks


def png_uri(pixels: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _preview_size(w: int, h: int) -> tuple[int, int]:
    s = PREVIEW / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def build(image: Image.Image | np.ndarray, name: str, source_bytes: int, model: zoo.CodingModel,
          quality: float | None = None, size: int | None = None, bpp: float | None = None,
          progress: Callable[[str], None] = lambda s: None) -> Page:
    """Code the image (as RGB: alpha is dropped, gray expanded) with every codec and lay out the page
    (see the module docstring for what it shows). source_bytes: the input file's size, shown for the original."""
    rgb = np.asarray(image.convert("RGB")) if isinstance(image, Image.Image) else image
    h, w = rgb.shape[:2]
    coded = code_all(rgb, model, quality, size, bpp, progress)
    original = Coded("original", f"original ({name})", "lossless source", source_bytes, None, None, None, None, rgb)
    everything = [original, *coded]
    large = w * h > LARGE
    regions = detail_regions(rgb, CROP, REGIONS) if large else [Box(0, 0, w, h)]
    preview = _preview_size(w, h) if large else None
    images = {}
    for c in everything:
        for n, b in enumerate(regions):
            images[f"{c.key}-{n}"] = (png_uri(c.pixels[b.y: b.y + b.h, b.x: b.x + b.w]), b.w, b.h)
        if preview:
            small = Image.fromarray(c.pixels).resize(preview, Image.Resampling.LANCZOS)
            images[f"{c.key}-fit"] = (png_uri(np.asarray(small)), *preview)
    html = render(name, w, h, everything, regions, preview, images, _notes(w, h, coded, regions, preview, model))
    return Page(html, tuple(coded), tuple(regions), preview)


def _notes(w: int, h: int, coded: list[Coded], regions: list[Box], preview, model: zoo.CodingModel) -> list[str]:
    """What the page shows and how the numbers were made, in plain sentences."""
    budget = coded[0].nbytes
    notes = [f"Each codec at its highest quality whose file is not larger than aecompress's {budget:,} bytes "
             "(bisection on the integer quality); bpp = file bytes x 8 / pixels.",
             "Every picture is a lossless PNG of the pixels each decoder gave, shown at Fit, 1:1 (one image "
             "pixel per CSS pixel) or 4x (pixels drawn as squares).",
             "PSNR on 8-bit RGB; MS-SSIM on RGB, the mean of its channels (n/a on images under "
             f"{MS_SSIM_SIDE} pixels a side). Times: one encode at the chosen setting and one decode, in this "
             f"process, on {os.cpu_count()} CPUs (Pillow {PIL.__version__}, aecompress model {model.name}).",
             "Original: the input file's size."]
    missing = [name for name, feature in (("WebP", "webp"), ("AVIF", "avif")) if not features.check(feature)]
    if missing:
        notes.append(f"Not shown: {', '.join(missing)} (this Pillow cannot write it).")
    for c in coded:
        if not c.fits:
            notes.append(f"{c.label}: even its lowest quality makes a larger file ({c.nbytes:,} bytes).")
    if preview:
        where = "; ".join(f"{n + 1}: x {b.x}, y {b.y}" for n, b in enumerate(regions))
        notes.append(f"This image has {w * h / 1e6:.1f} MP, so the page holds part of it: at Fit, every "
                     f"image downscaled to {preview[0]}x{preview[1]} (Lanczos); at 1:1 and 4x, {len(regions)} "
                     f"regions of {CROP}x{CROP} pixels at full resolution ({where}), the "
                     f"{len(regions) - 1} with the most detail and one smooth one. Click a box at Fit, "
                     "or choose a region, to zoom in on it.")
    return notes


BENCH_RATES = (0.25, 0.75)  # bpp of the two pages `aecompress bench` links from its report


def bench_pages(model: zoo.CodingModel, data_dir: str | os.PathLike, names: list[str], out: str | os.PathLike,
                rates: tuple[float, ...] = BENCH_RATES) -> dict:
    """Pages for kodim23 (else the first image) at each bitrate, written to out/compare/; the entry
    of results/compare.json that report.py links them from (paths relative to out)."""
    name = next((n for n in names if n.startswith("kodim23")), names[0])
    source = Path(data_dir) / name
    with Image.open(source) as im:
        image = im.convert("RGB")
    pages = []
    for bpp in rates:
        page = build(image, name, source.stat().st_size, model, bpp=bpp)
        path = Path(out) / "compare" / f"{Path(name).stem}-{bpp:g}bpp.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page.html)
        codecs = {c.key: {"setting": c.setting, "bytes": c.nbytes, "psnr-rgb": c.psnr} for c in page.coded}
        pages.append({"file": path.relative_to(out).as_posix(), "bpp": bpp, "page_bytes": path.stat().st_size,
                      "codecs": codecs})
    return {"name": "compare", "image": name, "pages": pages}
