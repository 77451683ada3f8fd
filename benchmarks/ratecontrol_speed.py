"""Rate control against a plain encode: time of `encode --target-size/--target-bpp/--target-psnr`
over the time of `codec.encode` at the quality it picks, with the shipped default model.

    python benchmarks/ratecontrol_speed.py [--repeat 3] [--threads 1] [--module FILE] [--out FILE]

Targets come from plain encodes, so every one is reachable: the size of the file at quality
35.3, the bitrate at 65.45, the PSNR at 45.2 and at 80.35 (near the top, where PSNR rises
slowly). None is a quality g_a's latents are made for (a step of codec.conditioning), and each
lies 0.2 to 0.45 above a step's bottom: near an edge, where an estimate a fraction of a quality
low lands in the step below and g_a runs a third time, more often than for a target anywhere
in the step. Times are
medians of interleaved repeats (the machine is shared: ratios measured together hold better
than times). Each result is also checked: the file is codec.encode at its quality (with the
latents it reports taking), it meets the target, and 0.1 quality more (for PSNR, less) would not.
--module times another implementation of ratecontrol.py (e.g. an older one, from git show).
Writes benchmarks/results/ratecontrol_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS_DIR = ROOT / "../shared/data/train"  # training photos, never Kodak (kodim23 is the repository\'s sample)
IMAGES = [ROOT / "samples/kodim23.png"] + [PHOTOS_DIR / n for n in
    ("bsds500_val_101085.jpg", "urban100_img_004.png", "bsds500_test_100039.jpg")]
# (name, kind, the quality the target is taken from)
TARGETS = [("size", "size", 35.3), ("bpp", "bpp", 65.45), ("psnr", "psnr", 45.2), ("psnr@80", "psnr", 80.35)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (1: steadier on a shared machine)")
    ap.add_argument("--module", type=Path, help="another ratecontrol.py to time")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ratecontrol_speed.json")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    from _ratecontrol import closer_fits, decoded_psnr, ratecontrol_module
    from PIL import Image

    from aecompress import codec, zoo

    ratecontrol = ratecontrol_module(args.module)
    model = zoo.load()
    runs, decodes = [], []
    analysis, synthesize = codec.analysis, codec.synthesize
    codec.analysis = lambda *a, **k: runs.append(a[2]) or analysis(*a, **k)  # counts g_a runs
    codec.synthesize = lambda *a, **k: decodes.append(a[2]) or synthesize(*a, **k)  # and g_s's

    def timed(f):
        start = time.perf_counter()
        out = f()
        return out, time.perf_counter() - start

    rows = []
    for path in IMAGES:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for name, kind, at in TARGETS:
            data = codec.encode(rgb, at, model=model)
            value = {"size": len(data), "bpp": len(data) * 8 / (rgb.shape[0] * rgb.shape[1]),
                     "psnr": decoded_psnr(rgb, data, model)}[kind]
            target = ratecontrol.Target(kind, value)
            runs.clear(), decodes.clear()
            result = ratecontrol.encode_to_target(rgb, target, model)
            g_a_runs, g_s_runs = len(runs), len(decodes)
            targeted, plain = [], []
            for _ in range(args.repeat):  # interleaved, so that both see the same load
                targeted.append(timed(lambda: ratecontrol.encode_to_target(rgb, target, model))[1])
                plain.append(timed(lambda: codec.encode(rgb, result.quality, model=model))[1])
            q = result.quality
            latents_for = getattr(result, "latents_for", None)  # an older ratecontrol.py gives none
            better_fits = closer_fits(rgb, result, kind, value, model)
            row = {"image": path.name, "pixels": rgb.shape[0] * rgb.shape[1], "target": name,
                   "value": round(value, 4), "from_quality": at, "quality": q, "reached": result.reached,
                   "identical": result.data == codec.encode(rgb, q, model=model, latents_for=latents_for),
                   "within_0.1": not better_fits, "g_a_runs": g_a_runs, "g_s_runs": g_s_runs,
                   "target_s": round(float(np.median(targeted)), 3), "encode_s": round(float(np.median(plain)), 3)}
            row["ratio"] = round(row["target_s"] / row["encode_s"], 2)
            rows.append(row)
            print(f"{path.name:28} {name:7} {value:10.4f} -> q {q:6.2f}  {row['ratio']:5.2f}x  g_a {g_a_runs}  "
                  f"g_s {g_s_runs}  within 0.1 {row['within_0.1']}  identical {row['identical']}", flush=True)
    summary = {name: {"median_ratio": float(np.median([r["ratio"] for r in rows if r["target"] == name])),
                      "max_ratio": max(r["ratio"] for r in rows if r["target"] == name)} for name, _, _ in TARGETS}
    print("\n| target | median ratio | max ratio |\n|---|---|---|")
    for kind, s in summary.items():
        print(f"| {kind} | {s['median_ratio']:.2f} | {s['max_ratio']:.2f} |")
    out = {"model": model.name, "module": str(args.module or "aecompress/ratecontrol.py"), "threads": args.threads,
           "repeat": args.repeat, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
