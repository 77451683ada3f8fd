"""Should a trained run replace a shipped model? Real coding of training photos, never Kodak.

    python benchmarks/ship_test.py runs/enc192/checkpoint.pt hyperprior-dn-w96-64-192-ctx4-4-5x5
    python benchmarks/ship_test.py CANDIDATE BASELINE --images 12 --effort 2

Kodak decides nothing here: it is the benchmark, and choosing weights by it would be tuning on
the test set. The candidate (a run's checkpoint or a weights file) and the baseline (a shipped
model's name or a weights file) code the same photos from `../shared/data/train`: every k-th file
of the sorted list, centre crops of at most 512x512, at the benchmark's nine qualities. Each
figure comes from the encoded bytes and the decoded pixels, averaged per image; the verdict is
the BD-rate of the candidate against the baseline (negative: fewer bits at equal PSNR), with the
rate change at each quality for equal settings beside it. Pillow JPEG (4:2:0, the benchmark's
qualities 5..95) codes the same photos: each model's BD-rate against it, and the bpp where its
curve is above JPEG's, show what a new lambda range trades (a longer curve, ending where it is
weakest).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import bench, codec, metrics, report, zoo
from aecompress.model import HyperpriorModel
from aecompress.train import list_images, load_checkpoint, load_source

HERE = Path(__file__).resolve().parent
TRAIN = HERE.parent.parent / "shared" / "data" / "train"
CROP = 512


def coding_model(source: str) -> zoo.CodingModel:
    """A shipped model by name, a weights file, or a run's checkpoint frozen as export would."""
    path = Path(source)
    if path.suffix == ".pt" and path.is_file():
        blob = load_checkpoint(path)
        if "train_config" not in blob:
            return zoo.load_file(path)
        state, config, _ = load_source(path)
        net = HyperpriorModel(config)
        net.load_state_dict(state)
        return zoo.freeze(net.eval(), path.parent.name)
    return zoo.load(source)


def photos(count: int) -> list[np.ndarray]:
    files = list_images(TRAIN)
    step = max(1, len(files) // count)
    out = []
    for f in files[::step][:count]:
        rgb = np.asarray(Image.open(f).convert("RGB"))
        h, w = rgb.shape[:2]
        top, left = max(0, (h - CROP) // 2), max(0, (w - CROP) // 2)
        out.append(np.ascontiguousarray(rgb[top : top + CROP, left : left + CROP]))
    return out


def measure(encode, decode, images: list[np.ndarray], settings) -> dict:
    """bpp of the encoded bytes and PSNR of the decoded pixels at each setting, averaged per image."""
    bpp, psnr = [], []
    for setting in settings:
        b, p = [], []
        for rgb in images:
            data = encode(rgb, setting)
            b.append(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]))
            p.append(metrics.psnr(rgb, decode(data)))
        bpp.append(float(np.mean(b)))
        psnr.append(float(np.mean(p)))
    return {"bpp": bpp, "psnr-rgb": psnr}


def measure_model(model: zoo.CodingModel, images: list[np.ndarray], qualities, effort: int) -> dict:
    return measure(lambda rgb, q: codec.encode(rgb, q, model=model, effort=effort),
                   lambda data: np.asarray(codec.decode(data, model=model)), images, qualities)


def measure_jpeg(images: list[np.ndarray]) -> dict:
    jpeg = next(c for c in bench.pillow_codecs() if c.name == "jpeg")
    return measure(lambda rgb, q: jpeg.encode(Image.fromarray(rgb), q), jpeg.decode, images, jpeg.settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidate", help="a run's checkpoint.pt or a weights file")
    parser.add_argument("baseline", help="a shipped model's name or a weights file")
    parser.add_argument("--images", type=int, default=12, help="training photos to code (default 12)")
    parser.add_argument("--effort", type=int, default=0, help="encoder effort for both (default 0)")
    parser.add_argument("--json", type=Path, help="also write every figure here (benchmarks/results/ship_test/)")
    args = parser.parse_args()
    qualities = bench.QUALITIES
    images = photos(args.images)
    start = time.time()
    results = {}
    for label, source in (("baseline", args.baseline), ("candidate", args.candidate)):
        results[label] = measure_model(coding_model(source), images, qualities, args.effort)
    base, cand = results["baseline"], results["candidate"]
    print(f"{len(images)} training photos (centre crops <= {CROP} px), effort {args.effort}, "
          f"{time.time() - start:.0f} s")
    print("| quality | baseline bpp | baseline dB | candidate bpp | candidate dB | rate change |")
    print("|---|---|---|---|---|---|")
    for i, q in enumerate(qualities):
        change = (cand["bpp"][i] / base["bpp"][i] - 1) * 100
        print(f"| {q:g} | {base['bpp'][i]:.4f} | {base['psnr-rgb'][i]:.2f} | {cand['bpp'][i]:.4f} | "
              f"{cand['psnr-rgb'][i]:.2f} | {change:+.1f}% |")
    bd = metrics.bd_rate(base["bpp"], base["psnr-rgb"], cand["bpp"], cand["psnr-rgb"])
    print("BD-rate of the candidate against the baseline: " + ("n/a" if bd is None else f"{bd:+.2f}%"))
    verdict = {"images": len(images), "crop": CROP, "effort": args.effort, "qualities": list(qualities),
               "candidate": args.candidate, "baseline": args.baseline, "bd_rate_vs_baseline_percent": bd,
               "curves": dict(results)}
    jpeg = measure_jpeg(images)
    verdict["curves"]["jpeg"] = jpeg
    for label, r in results.items():
        bd = metrics.bd_rate(jpeg["bpp"], jpeg["psnr-rgb"], r["bpp"], r["psnr-rgb"])
        where = report.ahead(r, jpeg)
        verdict[f"{label}_bd_rate_vs_jpeg_percent"], verdict[f"{label}_above_jpeg_bpp"] = bd, where
        print(f"{label}: BD-rate vs JPEG " + ("n/a" if bd is None else f"{bd:+.2f}%") + ", above JPEG at "
              + (", ".join(f"{a:.3f}-{b:.3f}" for a, b in where) or "no rate") + " bpp")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(verdict, indent=1) + "\n")


if __name__ == "__main__":
    main()
