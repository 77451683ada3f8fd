"""What conditioning g_a on steps of quality costs: files made as the codec makes them (g_a's
latents for the step at or below the quality, codec.conditioning, gained for the quality
itself) against latents made for the exact quality, on training photos at full size, at
qualities 1 to 4.5 above their step.

    python benchmarks/conditioning.py [--photos 6] [--out FILE]

For each photo and quality: the change in size and in PSNR, and the change in rate at equal
PSNR (the size change less the PSNR change over the slope of PSNR against log size there,
measured from plain encodes one quality either side). Writes benchmarks/results/conditioning.json.
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

from aecompress import codec, metrics, tiling, zoo
from aecompress.config import quality_to_t

ROOT = Path(__file__).resolve().parent.parent
PHOTOS_DIR = ROOT / "../shared/data/train"
QUALITIES = (11.0, 27.5, 43.0, 59.0, 74.5, 89.0)  # 1, 2.5, 3, 4, 4.5 and 4 above their step


def coded(m: zoo.CodingModel, rgb: np.ndarray, y: np.ndarray, q: float) -> tuple[float, float]:
    """Log size of the streams and PSNR of latents y (before the gain) coded at quality q."""
    latents = codec.quantize(m, y, q)
    size = sum(map(len, codec.encode_latents(m, latents)))
    h, w = rgb.shape[:2]
    return math.log(size), metrics.psnr(rgb, codec.synthesize(m, latents, q, w, h))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/conditioning.json")
    args = ap.parse_args()
    m = zoo.load()
    names = sorted(p.name for p in PHOTOS_DIR.iterdir() if p.suffix in (".jpg", ".png"))
    photos = names[:: max(1, len(names) // args.photos)][: args.photos]
    rows = []
    for name in photos:
        rgb = codec.prepare(Image.open(PHOTOS_DIR / name)).rgb
        for q in QUALITIES:
            stepped = coded(m, rgb, codec.analysis(m, rgb, q), q)
            exact_y = tiling.analysis(m.transforms, rgb, 0.0, quality_to_t(q))
            exact = coded(m, rgb, exact_y, q)
            below, above = (coded(m, rgb, codec.analysis(m, rgb, q + d), q + d) for d in (-1.0, 1.0))
            db_per_log_size = (above[1] - below[1]) / (above[0] - below[0])
            d_size, d_psnr = stepped[0] - exact[0], stepped[1] - exact[1]
            row = {"photo": name, "quality": q, "latents_for": codec.conditioning(q),
                   "size_change_pct": round(100 * d_size, 3), "psnr_change_db": round(d_psnr, 4),
                   "rate_change_at_equal_psnr_pct": round(100 * (d_size - d_psnr / db_per_log_size), 3)}
            rows.append(row)
            print(f"{name:28} q {q:5}: size {row['size_change_pct']:+.3f}%  PSNR {row['psnr_change_db']:+.4f} dB"
                  f"  rate at equal PSNR {row['rate_change_at_equal_psnr_pct']:+.3f}%", flush=True)
    rates = [r["rate_change_at_equal_psnr_pct"] for r in rows]
    summary = {"mean_rate_change_at_equal_psnr_pct": round(float(np.mean(rates)), 3),
               "median": round(float(np.median(rates)), 3),
               "min": min(rates), "max": max(rates), "points": len(rows)}
    print(f"rate at equal PSNR, the step's latents against exact ones: mean {float(np.mean(rates)):+.3f}%, "
          f"median {summary['median']:+.3f}%, range {summary['min']:+.3f}% .. {summary['max']:+.3f}%, "
          f"{len(rows)} points")
    out = {"model": m.name, "step": codec.CONDITIONING_STEP, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "qualities": QUALITIES, "summary": summary, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
