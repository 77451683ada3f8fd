"""Where a PSNR search starts: the quality a photo's JPEG PSNRs predict for the target (ratecontrol.FORESIGHT).

    python benchmarks/ratecontrol_start.py [--photos 48] [--model NAME] [--out FILE]

A photo's PSNR curve under the model moves up or down with how hard the photo is to code, and
Pillow's JPEG at two qualities (a few milliseconds) measures that. For each step quality of
codec.conditioning this fits, by least squares over training photos (never Kodak, and none of
the photos ratecontrol_counts.py or ratecontrol_speed.py measure), the model's PSNR at that step
as a + b * PSNR(JPEG 30) + c * PSNR(JPEG 60). Then, leaving each photo out of the fit in turn,
it reports how far the predicted quality lies from the real one for targets at five places in
a step, and how often it is in the same step (where the first run of g_a then serves the answer).
Writes benchmarks/results/ratecontrol_start.json; the coefficients are ratecontrol.FORESIGHT.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import codec, metrics, ratecontrol, zoo
from aecompress.train import list_images

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "../shared/data/train"
STEPS = (1.0, *range(5, 101, 5))
TARGETS_AT = (25.6, 41.9, 58.1, 74.4, 89.4)  # as in ratecontrol_counts.py: different places within a step


def photos(n: int) -> list[Path]:
    """n training photos spread evenly over the set (both of its sources), less those other
    rate-control benchmarks measure."""
    from _ratecontrol import counted_photos
    from ratecontrol_speed import IMAGES

    files = list_images(TRAIN)
    counted = set(counted_photos(files))
    files = [f for f in files[3:] if f not in counted and f.name not in {i.name for i in IMAGES}]
    return [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]


def curve(model: zoo.CodingModel, rgb: np.ndarray) -> list[float]:
    """The PSNR of a plain encode at each step quality (its own g_a; g_s on the integer latents)."""
    h, w = rgb.shape[:2]
    values = []
    for q in STEPS:
        latents = codec.quantize(model, codec.analysis(model, rgb, q), q)
        values.append(metrics.psnr(rgb, codec.synthesize(model, latents, q, w, h)))
    return values


def crossing(psnr: np.ndarray, target: float) -> float:
    """The quality where a rising step curve reaches the target (linear between steps; 1 or 100 outside)."""
    return float(np.interp(target, np.maximum.accumulate(psnr), STEPS))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--model", help="a model name (default: the manifest's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ratecontrol_start.json")
    args = ap.parse_args()
    model = zoo.load(args.model)
    rows = []
    for path in photos(args.photos):
        rgb = codec.prepare(Image.open(path)).rgb
        start = time.perf_counter()
        proxies = ratecontrol.jpeg_psnrs(rgb)
        proxy_s = time.perf_counter() - start
        rows.append({"photo": path.name, "pixels": rgb.shape[0] * rgb.shape[1], "jpeg_psnr": proxies,
                     "proxy_ms": round(proxy_s * 1000, 1), "psnr": curve(model, rgb)})
        print(f"{path.name:28} JPEG {proxies[0]:.2f} {proxies[1]:.2f} dB ({proxy_s * 1000:.0f} ms)"
              f"  q65 {rows[-1]['psnr'][STEPS.index(65)]:.2f} dB", flush=True)

    X = np.array([[1.0, *r["jpeg_psnr"]] for r in rows])
    Y = np.array([r["psnr"] for r in rows])
    coef = np.linalg.lstsq(X, Y, rcond=None)[0]  # (3, steps)
    errors: dict[float, list[float]] = {q: [] for q in TARGETS_AT}
    same_step: dict[float, list[bool]] = {q: [] for q in TARGETS_AT}
    for i in range(len(rows)):  # leave one out
        keep = np.arange(len(rows)) != i
        predicted = X[i] @ np.linalg.lstsq(X[keep], Y[keep], rcond=None)[0]
        for q in TARGETS_AT:
            target = float(np.interp(q, STEPS, Y[i]))
            guess = crossing(predicted, target)
            errors[q].append(guess - q)
            same_step[q].append(codec.conditioning(guess) == codec.conditioning(q))
    summary = {}
    print(f"\npredicted - real quality, leaving each of {len(rows)} photos out of the fit:")
    for q in TARGETS_AT:
        e = np.array(errors[q])
        summary[q] = {"mean": round(float(e.mean()), 2), "std": round(float(e.std()), 2),
                      "max_abs": round(float(np.abs(e).max()), 1), "same_step": round(float(np.mean(same_step[q])), 2)}
        print(f"  q {q:5g}: mean {e.mean():+.2f}  std {e.std():.2f}  max |error| {np.abs(e).max():.1f}"
              f"  same step {np.mean(same_step[q]):.0%}")
    print("\nFORESIGHT = (  # (step, a, b, c)")
    for s, (a, b, c) in zip(STEPS, coef.T):
        print(f"    ({s:g}, {a:.3f}, {b:.4f}, {c:.4f}),")
    print(")")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "model": model.name, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": STEPS,
        "coefficients": [[round(float(v), 4) for v in col] for col in coef.T], "leave_one_out": summary,
        "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
