"""How much steeper a photo's real PSNR curve is than its first run's: ratecontrol.STEEPER.

    python benchmarks/ratecontrol_curves.py [--start 65 50] [--photos 16] [--model NAME] [--out FILE]

Rate control's first run of g_a, at a start quality, gives latents that it gains for other
qualities; g_s on them gives a curve of the real one's shape, only flatter. For each start and
quality this measures (real - base) / (first run's - base), where base is the PSNR at the start
(the same on both curves) and "real" is codec.encode at that quality, decoded. Training photos
only (never Kodak), every k-th one from an offset, so that they are not the photos rate control
is timed on. Prints the mean and the spread between photos; writes
benchmarks/results/ratecontrol_curves.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from _ratecontrol import decoded_psnr
from PIL import Image

from aecompress import codec, metrics, zoo
from aecompress.config import quality_to_t
from aecompress.train import list_images

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "../shared/data/train"
QUALITIES = (5, 10, 20, 30, 40, 45, 55, 60, 70, 80, 90, 95, 100)


def factors(model: zoo.CodingModel, rgb: np.ndarray, start: float) -> dict[float, float]:
    """(real - base) / (first run's - base) at each quality more than 2 away from the start."""
    h, w = rgb.shape[:2]
    transforms = codec.transforms_for(model)
    y = codec.analysis(model, rgb, start)

    def first_run(q: float) -> float:
        latents = codec.quantize_scaled(model, y * transforms.gain(quality_to_t(q))[:, None, None], transforms)
        return metrics.psnr(rgb, codec.synthesize(model, latents, q, w, h))

    def real(q: float) -> float:
        return decoded_psnr(rgb, codec.encode(rgb, q, model=model), model)

    base = first_run(start)
    return {q: (real(q) - base) / (first_run(q) - base) for q in QUALITIES if abs(q - start) > 2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--start", type=float, nargs="+", default=[65.0, 50.0])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--model", help="a model name (default: the manifest's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ratecontrol_curves.json")
    args = ap.parse_args()
    model = zoo.load(args.model)
    files = list_images(TRAIN)
    step = len(files) // args.photos
    files = files[step // 2 :: step][: args.photos]
    out = {"model": model.name, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "photos": [f.name for f in files], "starts": {}}
    for start in args.start:
        rows = {f.name: factors(model, np.asarray(Image.open(f).convert("RGB")), start) for f in files}
        summary = {}
        print(f"start {start:g}: (real - base) / (first run's - base) over {len(files)} photos")
        for q in next(iter(rows.values())):
            r = np.array([row[q] for row in rows.values()])
            summary[q] = {"mean": round(float(r.mean()), 3), "std": round(float(r.std()), 3),
                          "min": round(float(r.min()), 3), "max": round(float(r.max()), 3)}
            print(f"  q {q:5g}  mean {r.mean():.3f}  std {r.std():.3f}  min {r.min():.3f}  max {r.max():.3f}")
        out["starts"][str(start)] = {"summary": summary, "photos": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
