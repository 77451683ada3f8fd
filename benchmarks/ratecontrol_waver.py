"""What a PSNR search can tell apart: how PSNR wavers within a step, against the image's size
(ratecontrol.WAVER, WAVER_DB, WAVER_POWER), and what a tenth of a quality is worth in bytes.

    python benchmarks/ratecontrol_waver.py [--photos 6] [--model NAME] [--out FILE]

Waver: on crops of training photos (a third, three fifths and all of each side), the PSNR of
13 qualities 0.05 apart from the bottom of steps 45 and 80 (one run of g_a each, as rate
control makes them), less a straight line fitted through them: the residuals' standard
deviation and largest value, and a power law in the pixels fitted to the deviations. Growth:
log(size at q + 1 / size at q) of plain encodes at qualities from 10 to 95, on other training
photos: the mean and the spread. Training photos only, never Kodak. Writes benchmarks/results/ratecontrol_waver.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import codec, metrics, zoo
from aecompress.train import list_images

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "../shared/data/train"
CROPS = (0.33, 0.6, 1.0)
STEPS = (45.0, 80.0)
GROWTH_AT = (10.5, 25.5, 45.5, 60.5, 70.5, 80.5, 85.5, 89.5, 95.5)


def waver(model: zoo.CodingModel, rgb: np.ndarray, step: float) -> tuple[float, float]:
    """The residuals' standard deviation and largest value, in dB."""
    h, w = rgb.shape[:2]
    y = codec.analysis(model, rgb, step)
    qualities = step + 0.05 * np.arange(13)
    psnrs = np.array([metrics.psnr(rgb, codec.synthesize(model, codec.quantize(model, y, q), q, w, h))
                      for q in qualities])
    residual = psnrs - np.polyval(np.polyfit(qualities, psnrs, 1), qualities)
    return float(residual.std()), float(np.abs(residual).max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--model", help="a model name (default: the manifest's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ratecontrol_waver.json")
    args = ap.parse_args()
    model = zoo.load(args.model)
    files = list_images(TRAIN)
    every = len(files) // args.photos
    waver_files, growth_files = files[7::every][: args.photos], files[every // 3 :: every][: args.photos]

    rows = []
    for path in waver_files:
        photo = np.asarray(Image.open(path).convert("RGB"))
        for share in CROPS:
            h, w = (int(side * share) // 16 * 16 for side in photo.shape[:2])
            rgb = np.ascontiguousarray(photo[:h, :w])
            for step in STEPS:
                std, largest = waver(model, rgb, step)
                rows.append({"photo": path.name, "pixels": h * w, "step": step, "std": std, "max": largest})
                print(f"{path.name:28} {h * w:8d} px  step {step:3g}  std {std:.4f} dB  max {largest:.4f}", flush=True)
    pixels = np.array([r["pixels"] for r in rows], float)
    std = np.array([r["std"] for r in rows])
    power, scale = np.polyfit(np.log(pixels), np.log(std), 1)
    print(f"std ~ {math.exp(scale) * 1e5 ** power:.4f} dB * (pixels / 100000) ^ {power:.2f}")

    growth: dict[float, list[float]] = {q: [] for q in GROWTH_AT}
    for path in growth_files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for q in GROWTH_AT:
            sizes = [len(codec.encode(rgb, at, model=model)) for at in (q, q + 1)]
            growth[q].append(math.log(sizes[1] / sizes[0]))
    summary = {}
    for q, values in growth.items():
        v = np.array(values)
        summary[q] = {key: round(float(f(v)), 4) for key, f in (("mean", np.mean), ("min", np.min), ("max", np.max))}
        print(f"growth at {q:4g}: log size per quality {v.mean():.4f} (min {v.min():.4f}, max {v.max():.4f})")

    out = {"model": model.name, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "waver": {"fit": {"std_at_100000_pixels": round(math.exp(scale) * 1e5 ** power, 5),
                             "power": round(float(power), 3)}, "rows": rows},
           "growth": {"photos": [p.name for p in growth_files], "summary": summary}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
