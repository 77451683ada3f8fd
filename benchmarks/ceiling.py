"""Where a model's PSNR stops rising (the default's, unless --model): in the quantizer or in the transforms.

    python benchmarks/ceiling.py [--model NAME|FILE|CHECKPOINT] [--images DIR] [--qualities 60 80 100] [--out FILE]

For each image and quality, the same latents of g_a decoded two ways by g_s: as the file codes
them (rounded around the entropy model's means), and without rounding at all (y times the
quality's gain, as it leaves g_a). The first is the codec's PSNR; the second is what the
transforms alone give back, the most any quantizer could reach with them. If the two meet at the
top quality, finer quantization (more bits) cannot lift the ceiling: only transforms that
reconstruct better can. Writes benchmarks/results/ceiling.json (ceiling-MODEL.json for another
model) and prints the means.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from ship_test import coding_model

from aecompress import codec, metrics, tiling
from aecompress.config import quality_to_t

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a shipped model's name, a weights file or a run's checkpoint")
    ap.add_argument("--images", type=Path, default=ROOT / "../shared/data/kodak")
    ap.add_argument("--qualities", type=float, nargs="+", default=[60.0, 80.0, 100.0])
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/ceiling[-MODEL].json")
    args = ap.parse_args()
    m = coding_model(args.model) if args.model else codec.load_model(None)
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    rows = []
    for path in paths:
        rgb = codec.prepare(Image.open(path)).rgb
        h, w = rgb.shape[:2]
        for q in args.qualities:
            y = codec.analysis(m, rgb, q)
            latents = codec.quantize(m, y, q)
            size = sum(map(len, codec.encode_latents(m, latents)))
            coded = metrics.psnr(rgb, codec.synthesize(m, latents, q, w, h))
            t = quality_to_t(q)
            unrounded = tiling.synthesis(m.transforms, y * m.transforms.gain(t)[:, None, None], t, h, w)
            rows.append({"image": path.name, "quality": q, "bpp": round(size * 8 / (h * w), 4),
                         "coded_psnr": round(coded, 3), "unrounded_psnr": round(metrics.psnr(rgb, unrounded), 3)})
        print(path.name, *(f"q{r['quality']:g} {r['coded_psnr']:.2f}/{r['unrounded_psnr']:.2f}"
                           for r in rows[-len(args.qualities):]), flush=True)

    print(f"\n{len(paths)} images from {args.images.resolve().name}, model {m.name}; means:\n")
    print("| quality | bpp | PSNR of the file dB | PSNR without rounding dB | what rounding costs dB |")
    print("|---|---|---|---|---|")
    for q in args.qualities:
        at = [r for r in rows if r["quality"] == q]
        bpp, coded, unrounded = (float(np.mean([r[k] for r in at])) for k in ("bpp", "coded_psnr", "unrounded_psnr"))
        print(f"| {q:g} | {bpp:.3f} | {coded:.2f} | {unrounded:.2f} | {unrounded - coded:.2f} |")
    out = args.out or ROOT / "benchmarks/results" / (f"ceiling-{m.name}.json" if args.model else "ceiling.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": m.name, "images": args.images.resolve().name,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rows": rows}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
