"""How far above its step g_a's latents serve: ratecontrol.REACH.

    python benchmarks/conditioning_reach.py [--photos 6] [--out FILE]

A plain encode gains the latents made for the step at or below its quality (codec.conditioning,
steps of 5). Rate control may gain a run's latents further up, to spare a run of g_a. For each
step c from 15 to 100 and each quality c + d (d = 0, 2.5, ..., 15), this codes the latents made
for c at that quality and compares it with the plain encodes' curve (log size against PSNR,
through their points at c and c + 2.5 of every step): the change in rate at equal PSNR. Training
photos only (never Kodak), full size. Prints the mean and the worst photo per step and distance;
writes benchmarks/results/conditioning_reach.json.
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
STEPS = range(15, 101, 5)
ABOVE = (0.0, 2.5, 5.0, 7.5, 10.0, 12.5, 15.0)


def points(m: zoo.CodingModel, rgb: np.ndarray) -> dict[tuple[float, float], tuple[float, float]]:
    """(step, quality) -> (log size of the streams, PSNR) of the step's latents at that quality."""
    h, w = rgb.shape[:2]
    out = {}
    for c in STEPS:
        y = codec.analysis(m, rgb, c)
        for q in (c + d for d in ABOVE if c + d <= 100):
            latents = codec.quantize(m, y, q)
            size = sum(map(len, codec.encode_latents(m, latents)))
            out[float(c), q] = (math.log(size), metrics.psnr(rgb, codec.synthesize(m, latents, q, w, h)))
    return out


def rate_changes(pts: dict) -> dict[tuple[float, float], float]:
    """Per (step, distance above it): the rate at equal PSNR against the plain encodes' curve, in %."""
    plain = sorted((p, s) for (c, q), (s, p) in pts.items() if codec.conditioning(q) == c)
    psnr, log_size = (np.array(column) for column in zip(*plain))
    return {(c, q - c): 100 * (s - float(np.interp(p, psnr, log_size)))
            for (c, q), (s, p) in pts.items() if psnr[0] <= p <= psnr[-1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/conditioning_reach.json")
    args = ap.parse_args()
    m = zoo.load()
    files = list_images(TRAIN)
    files = files[7 :: len(files) // args.photos][: args.photos]
    changes: dict[str, dict] = {}
    for f in files:
        changes[f.name] = rate_changes(points(m, codec.prepare(Image.open(f)).rgb))
        print(f"{f.name} done", flush=True)
    summary = {}
    for c in STEPS:
        row = {}
        for d in ABOVE:
            values = [photo[c, d] for photo in changes.values() if (c, d) in photo]
            if values:
                row[str(d)] = {"mean": round(float(np.mean(values)), 2), "max": round(float(np.max(values)), 2)}
        summary[str(c)] = row
        print(f"step {c:3}: " + "  ".join(f"+{d:g} {v['mean']:+.1f}/{v['max']:+.1f}" for d, v in
                                        ((float(k), v) for k, v in row.items())), flush=True)
    print("(rate change at equal PSNR against plain encodes, %: mean / worst photo)")
    out = {"model": m.name, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "photos": list(changes),
           "summary": summary,
           "rows": {name: {f"{c:g}+{d:g}": round(v, 3) for (c, d), v in photo.items()}
                    for name, photo in changes.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
