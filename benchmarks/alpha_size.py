"""The alpha section against an optimized PNG of the same plane, on alpha planes made from photos.

    python benchmarks/alpha_size.py [--out FILE]

For each photo: a soft-edged cut-out (a blurred threshold of its blurred luminance, as a
matting tool would leave it), that mask hard (binary), a radial vignette and a linear gradient.
Each plane is coded as the alpha2 section (container.pack_alpha), as the old alpha section
(zlib level 9 of the raw plane) and as Pillow's optimized PNG
(`Image.fromarray(alpha).save(buf, "PNG", optimize=True)`). Writes
benchmarks/results/alpha_size.json.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from aecompress import container

ROOT = Path(__file__).resolve().parent.parent
PHOTOS_DIR = ROOT / "../shared/data/train"  # training photos, never Kodak (kodim23 is the repository\'s sample)
PHOTOS = [ROOT / "samples/kodim23.png"] + [PHOTOS_DIR / n for n in
    ("bsds500_val_101085.jpg", "urban100_img_004.png", "bsds500_test_100039.jpg")]


def planes(path: Path) -> dict[str, np.ndarray]:
    gray = Image.open(path).convert("L")
    w, h = gray.size
    mask = (np.asarray(gray.filter(ImageFilter.GaussianBlur(6))) > 110).astype(np.uint8) * 255
    yy, xx = np.mgrid[0:h, 0:w]
    radius = np.hypot((yy - h / 2) / h, (xx - w / 2) / w)
    return {"cut-out": np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(2.5))),
            "binary mask": mask,
            "vignette": np.clip(255 * (1.25 - 1.6 * radius), 0, 255).astype(np.uint8),
            "gradient": (xx * 255 // max(w - 1, 1)).astype(np.uint8)}


def png(plane: np.ndarray) -> int:
    out = io.BytesIO()
    Image.fromarray(plane).save(out, "PNG", optimize=True)
    return len(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/alpha_size.json")
    args = ap.parse_args()
    rows = []
    for path in PHOTOS:
        for kind, plane in planes(path).items():
            start = time.perf_counter()
            payload = container.pack_alpha(plane)
            seconds = time.perf_counter() - start
            h, w = plane.shape
            assert np.array_equal(container.unpack_alpha({container.ALPHA2: payload}, w, h), plane)
            row = {"image": path.name, "plane": kind, "pixels": h * w, "alpha2_bytes": len(payload),
                   "filter": payload[0], "coder": ["zlib", "lzma"][payload[1]], "png_optimized_bytes": png(plane),
                   "old_alpha_bytes": len(zlib.compress(plane.tobytes(), 9)), "alpha2_seconds": round(seconds, 3)}
            row["vs_png"] = round(row["alpha2_bytes"] / row["png_optimized_bytes"], 3)
            rows.append(row)
            print(f"{path.name:28} {kind:12} alpha2 {row['alpha2_bytes']:7} ({row['coder']}, filter {row['filter']})"
                  f"  png {row['png_optimized_bytes']:7}  old {row['old_alpha_bytes']:7}  x{row['vs_png']:.3f}",
                  flush=True)
    ratios = [r["vs_png"] for r in rows]
    summary = {"max_vs_png": max(ratios), "median_vs_png": float(np.median(ratios)),
               "total_alpha2": sum(r["alpha2_bytes"] for r in rows),
               "total_png_optimized": sum(r["png_optimized_bytes"] for r in rows),
               "total_old_alpha": sum(r["old_alpha_bytes"] for r in rows)}
    print(json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
