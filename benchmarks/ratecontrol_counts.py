"""The work rate control does for a PSNR (or size) target: runs of g_a and g_s, counted.

    python benchmarks/ratecontrol_counts.py [--kind psnr|size] [--model NAME] [--module FILE] [--out FILE]
    python benchmarks/ratecontrol_counts.py --held-out    # 60 other targets, on other photos

Counts are what a search costs on any machine (g_a about 0.6 s and g_s about 0.2 s on a Kodak
image on 2 cores; a plain encode is one g_a), and unlike times they do not move between runs.
Targets: on 12 training photos (never Kodak), the PSNR (rounded to 0.1 dB) or the size (to
100 bytes) of plain encodes at qualities 25.6, 41.9, 58.1, 74.4 and 89.4, which lie at
different places within a step of codec.conditioning. --module counts another implementation
of ratecontrol.py (an older one, from git show). Each result is also checked: whether the file
0.1 of a quality closer to the target's end meets the target too ("closer_fits"). Writes
benchmarks/results/ratecontrol_counts_KIND.json.

--held-out takes 12 other training photos (midway between those) and qualities 22.3, 33.8, 47.2,
63.7 and 81.1 (ratecontrol_counts_KIND_held_out.json): a change tuned on the first set should
also pay on these. One of them is among the 48 that ratecontrol.FORESIGHT was fitted on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "../shared/data/train"
QUALITIES = (25.6, 41.9, 58.1, 74.4, 89.4)
HELD_OUT_QUALITIES = (22.3, 33.8, 47.2, 63.7, 81.1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=("psnr", "size"), default="psnr")
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--module", type=Path, help="another ratecontrol.py to count")
    ap.add_argument("--model", help="a model name (default: the manifest's default)")
    ap.add_argument("--held-out", action="store_true", help="other photos and qualities")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # steadier times beside other work

    import numpy as np
    from _ratecontrol import closer_fits, counted_photos, decoded_psnr, ratecontrol_module
    from PIL import Image

    from aecompress import codec, zoo
    from aecompress.train import list_images

    ratecontrol = ratecontrol_module(args.module)
    model = zoo.load(args.model)
    files = list_images(TRAIN)
    files = counted_photos(files, args.photos, args.held_out)
    qualities = HELD_OUT_QUALITIES if args.held_out else QUALITIES

    analyses, syntheses = [], []
    analysis, synthesize = codec.analysis, codec.synthesize
    codec.analysis = lambda *a, **k: analyses.append(a[2]) or analysis(*a, **k)
    codec.synthesize = lambda *a, **k: syntheses.append(a[2]) or synthesize(*a, **k)

    rows = []
    start = time.perf_counter()
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for at in qualities:
            data = codec.encode(rgb, at, model=model)
            if args.kind == "psnr":
                value = round(decoded_psnr(rgb, data, model), 1)
            else:
                value = round(len(data), -2)
            analyses.clear(), syntheses.clear()
            result = ratecontrol.encode_to_target(rgb, ratecontrol.Target(args.kind, value), model)
            row = {"photo": path.name, "from_quality": at, "target": value, "quality": result.quality,
                   "bytes": len(result.data), "reached": result.reached, "g_a": len(analyses), "g_s": len(syntheses),
                   "closer_fits": closer_fits(rgb, result, args.kind, value, model)}
            rows.append(row)
            print(f"{path.name:28} {value:9g} -> q {result.quality:6.2f}  g_a {row['g_a']}  g_s {row['g_s']}"
                  + ("  (0.1 closer also fits)" if row["closer_fits"] else ""), flush=True)
    seconds = time.perf_counter() - start
    summary = {"targets": len(rows), "g_a": sum(r["g_a"] for r in rows), "g_s": sum(r["g_s"] for r in rows),
               "g_a_per_target": round(float(np.mean([r["g_a"] for r in rows])), 2),
               "g_s_per_target": round(float(np.mean([r["g_s"] for r in rows])), 2),
               "closer_fits": sum(r["closer_fits"] for r in rows), "seconds": round(seconds, 1)}
    print(f"\n{summary['targets']} targets: g_a {summary['g_a']} ({summary['g_a_per_target']} a target), "
          f"g_s {summary['g_s']} ({summary['g_s_per_target']}); the quality 0.1 closer to the target's "
          f"end also fits for {summary['closer_fits']}; {seconds:.0f} s with the plain encodes and those checks")
    held_out = "_held_out" if args.held_out else ""
    out = args.out or ROOT / f"benchmarks/results/ratecontrol_counts_{args.kind}{held_out}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": model.name, "module": str(args.module or "aecompress/ratecontrol.py"),
                               "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "qualities": list(qualities),
                               "photos": [path.name for path in files], "summary": summary,
                               "rows": rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    sys.exit(main())
