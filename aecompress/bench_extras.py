"""Benchmark extras beyond the RD sweep: sparsity of the code, crops at equal bitrate, CompressAI's
hyperprior speed and peak memory on a 24-megapixel image. Each writes one JSON file (and the crops
PNGs) that plot.py turns into tables and figures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import codec, metrics, zoo
from .peers import pillow_codecs, write_json
from .sparsity import Sparsity, sparsity_of

CROP = 256
BIG_SIZE = (6000, 4000)  # 24 megapixels


def sparsity_table(model: zoo.CodingModel, files: Path) -> dict:
    """Per quality, the image-mean of each statistic, over the .aec files the sweep wrote."""
    by_q: dict[float, list[Sparsity]] = {}
    for f in sorted(files.glob("*.aec")):
        q = float(f.stem.rsplit("@", 1)[1])
        by_q.setdefault(q, []).append(sparsity_of(f.read_bytes(), model))
    qs = sorted(by_q)
    mean = lambda field: [float(np.mean([getattr(s, field) for s in by_q[q]])) for q in qs]
    return {"name": "sparsity", "description": f"integer latents of the aecompress files, model {model.name}; "
            "channels_99 = fewest channels holding 99% of the ideal y bits",
            "results": {"quality": qs, "zero_share": mean("zero_share"), "nonzero_channels":
                        mean("nonzero_channels"), "channels_99": mean("channels_99"),
                        "channels": model.config.M, "y_bits": mean("y_bits")}}


def _busiest_window(rgb: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left of the size x size window with the most detail (where codecs differ most)."""
    gray = rgb.astype(np.float64).mean(axis=2)
    detail = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    best, where = -1.0, (0, 0)
    for y in range(0, max(1, detail.shape[0] - size + 1), 32):
        for x in range(0, max(1, detail.shape[1] - size + 1), 32):
            d = detail[y : y + size, x : x + size].sum()
            if d > best:
                best, where = d, (x, y)
    return where


def _closest_setting(enc: Callable[[float], bytes], lo: int, hi: int, target_bytes: int) -> int:
    """Largest integer quality whose file is not larger than target_bytes (bisection; lo if none)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(enc(mid)) <= target_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def crops(model: zoo.CodingModel, quality: float, name: str, image: Image.Image, out: Path) -> dict:
    """Crops of one image, every codec at the largest setting not above aecompress's file size."""
    rgb = np.asarray(image)
    x, y = _busiest_window(rgb)
    box = (x, y, min(x + CROP, image.width), min(y + CROP, image.height))
    ours = codec.encode(image, quality, model=model)
    entries = {"aecompress": (quality, ours, np.asarray(codec.decode(ours, model=model).convert("RGB")))}
    ranges = {"jpeg": (1, 95), "webp": (0, 100), "avif": (0, 100)}
    for c in pillow_codecs():
        if c.name in ranges:
            q = _closest_setting(lambda s: c.encode(image, s), *ranges[c.name], len(ours))
            data = c.encode(image, q)
            entries[c.name] = (q, data, c.decode(data))
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).crop(box).save(out / "original.png")
    table = {"original": {"file": "original.png"}}
    for codec_name, (setting, data, back) in entries.items():
        Image.fromarray(back).crop(box).save(out / f"{codec_name}.png")
        table[codec_name] = {"file": f"{codec_name}.png", "setting": setting, "bytes": len(data),
                             "bpp": len(data) * 8 / (image.width * image.height),
                             "psnr-rgb": metrics.psnr(rgb, back)}
    return {"name": "crops", "image": name, "box": list(box), "crops": table}


def _import_compressai_hyperprior():
    """CompressAI's ScaleHyperprior without the package __init__ (it imports torchvision and
    point-cloud extras that have no CPU build here); only the image-model modules are loaded."""
    spec = importlib.util.find_spec("compressai")
    if spec is None:
        raise ImportError("compressai is not installed (pip install --no-deps compressai)")
    root = spec.submodule_search_locations[0]
    identity = lambda *a, **k: (lambda cls: cls)
    for name, path, attrs in (
        ("compressai", root, {"get_entropy_coder": lambda: "ans", "available_entropy_coders": lambda: ["ans"]}),
        ("compressai.registry", None, {"register_model": identity, "register_module": identity}),
        ("compressai.models", os.path.join(root, "models"), {}),
    ):
        if name not in sys.modules:
            module = types.ModuleType(name)
            if path:
                module.__path__ = [path]
            module.__dict__.update(attrs)
            sys.modules[name] = module
    from compressai.models.google import ScaleHyperprior

    return ScaleHyperprior


def compressai_speed(name: str, image: Image.Image, repeats: int = 3) -> dict:
    """Encode/decode time of CompressAI's bmshj2018-hyperprior (N=128, M=192) with random
    weights, through its real compress()/decompress() after update()."""
    entry = {"name": "compressai-bmshj2018-hyperprior", "image": name, "available": False}
    try:
        ScaleHyperprior = _import_compressai_hyperprior()
        import compressai.version

        entry["version"] = compressai.version.__version__
    except Exception as e:  # an optional extra: say why it did not run
        return {**entry, "reason": f"{type(e).__name__}: {e}"}
    torch.manual_seed(0)
    net = ScaleHyperprior(128, 192).eval()
    net.update(force=True)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)[None].float() / 255
    h, w = x.shape[2:]
    x = torch.nn.functional.pad(x, (0, -w % 64, 0, -h % 64), mode="replicate")
    enc, dec = [], []
    with torch.no_grad():
        net.decompress(**_strings(net.compress(x)))  # warm-up
        for _ in range(repeats):
            t = time.perf_counter()
            out = net.compress(x)
            enc.append(time.perf_counter() - t)
            t = time.perf_counter()
            net.decompress(**_strings(out))
            dec.append(time.perf_counter() - t)
    return {**entry, "available": True, "encoding_time": float(np.median(enc)),
            "decoding_time": float(np.median(dec)), "threads": torch.get_num_threads(),
            "description": "random weights (timing only; its rate and PSNR are meaningless), "
                           "N=128 M=192, compress()/decompress() after update(), median of repeats"}


def _strings(out: dict) -> dict:
    return {"strings": out["strings"], "shape": out["shape"]}


def _child_peak(cmd: list[str], threads: int, limit_gb: float) -> dict:
    """Run cmd as a child; its peak RSS from wait4. An address-space limit makes an oversized run
    fail inside the child instead of waking the kernel's OOM killer on a shared machine."""
    import resource

    limit = int(limit_gb * 2**30)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    err = p.stderr.read().decode(errors="replace").strip().splitlines()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return {"ok": p.returncode == 0, "max_rss_mb": usage.ru_maxrss / 1024, "seconds": time.perf_counter() - start,
            "error": err[-1][:300] if p.returncode and err else None}


def peak_memory(model_arg: str | None, image: Image.Image, name: str, threads: int = 1,
                limit_gb: float = 12.0) -> dict:
    """Peak RSS of `aecompress encode` and `decode` on the image upscaled to 24 megapixels."""
    with tempfile.TemporaryDirectory(prefix="aec-mem-") as tmp:
        big, aec, png = Path(tmp) / "big.png", Path(tmp) / "big.aec", Path(tmp) / "back.png"
        image.resize(BIG_SIZE, Image.Resampling.LANCZOS).save(big, compress_level=1)
        model = ["--model", model_arg] if model_arg else []
        cli = [sys.executable, "-m", "aecompress"]
        enc = _child_peak(cli + ["encode", str(big), "-q", "50", "-o", str(aec), "-f"] + model, threads, limit_gb)
        dec = (_child_peak(cli + ["decode", str(aec), "-o", str(png), "-f"] + model, threads, limit_gb)
               if enc["ok"] else {"ok": False, "error": "encode failed"})
        return {"name": "memory", "image": f"{name} upscaled (Lanczos) to {BIG_SIZE[0]}x{BIG_SIZE[1]}",
                "pixels": BIG_SIZE[0] * BIG_SIZE[1], "threads": threads, "limit_gb": limit_gb,
                "encode": enc, "decode": dec, "bytes": aec.stat().st_size if aec.exists() else None}


def record_in_manifest(model: zoo.CodingModel, results: Path) -> dict:
    """Write a full Kodak run's figures of `model` into weights/manifest.json, beside its entry."""
    r = json.loads((results / "aecompress.json").read_text())["results"]
    jpeg = json.loads((results / "jpeg.json").read_text())["results"]
    run = json.loads((results / "run.json").read_text())
    bd = metrics.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], r["bpp"], r["psnr-rgb"])
    kodak = {"images": run["images"], "measured": run["date"], "source": f"{results.as_posix()}/aecompress.json",
             "quality": r["quality"], "bpp": [round(v, 4) for v in r["bpp"]],
             "psnr_rgb": [round(v, 3) for v in r["psnr-rgb"]],
             "ms_ssim_rgb": [round(v, 5) for v in r["ms-ssim-rgb"]],
             "decoding_time_s": [round(v, 4) for v in r["decoding_time"]],
             "bd_rate_vs_pillow_jpeg_percent": None if bd is None else round(bd, 2)}
    entry = zoo.entry(model.name)
    if bytes.fromhex(entry["sha256"][:16]) != model.digest:
        raise ValueError(f"the manifest's '{model.name}' is not the benchmarked file")
    zoo.register(zoo.WEIGHTS_DIR / entry["file"], entry["sha256"], kodak=kodak,
                 default=zoo.manifest()["default"] == model.name)
    return kodak


def run_all(model: zoo.CodingModel, model_arg: str | None, images: list[tuple[str, Image.Image]],
            files_dir: Path, results: Path, threads: int, quick: bool,
            progress: Callable[[str], None] = lambda s: None) -> None:
    """Every extra, each into its own JSON under results/."""
    write_json(results / "sparsity.json", sparsity_table(model, files_dir / "aecompress"))
    name, image = next(((n, im) for n, im in images if n.startswith("kodim23")), images[0])
    sweep = json.loads((results / "aecompress.json").read_text())
    j = [n for n, _ in images].index(name)
    bpp = [b * 8 / image.width / image.height for b in np.array(sweep["per_image"]["bytes"])[:, j]]
    quality = sweep["results"]["quality"][int(np.argmin(np.abs(np.log(np.array(bpp) / 0.3))))]
    write_json(results / "crops.json", crops(model, quality, name, image, results / "crops"))
    progress("extras: sparsity, crops")
    write_json(results / "speed-compressai.json", compressai_speed(images[0][0], images[0][1], 1 if quick else 3))
    progress("extras: compressai speed")
    if not quick:
        write_json(results / "memory.json", peak_memory(model_arg, images[0][1], images[0][0], threads))
        progress("extras: peak memory")
