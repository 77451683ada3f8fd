"""Rate control as a user times it: `aecompress encode --target-...` against `aecompress encode
-q Q` at the quality it picked, each a whole process (start-up, reading the image and the
model, writing the file), on the same photos and targets as ratecontrol_speed.py. The plain
encode is timed at the quality the target's file reports; above 60 that file may take a lower
step's latents (ratecontrol.REACH), so "same_file" says whether the two files are the same.

    python benchmarks/ratecontrol_cli.py [--repeat 5] [--out FILE]

Runs the `aecompress` on PATH with its default threads (all cores). Each target comes from a
plain encode at a quality just above a step's edge (see ratecontrol_speed.py). Times are
medians of interleaved repeats. Writes benchmarks/results/ratecontrol_cli.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _ratecontrol import decoded_psnr
from PIL import Image
from ratecontrol_speed import IMAGES, TARGETS

from aecompress import codec, container, zoo

ROOT = Path(__file__).resolve().parent.parent
OPTION = {"size": "--target-size", "bpp": "--target-bpp", "psnr": "--target-psnr"}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ratecontrol_cli.json")
    args = ap.parse_args()
    exe = shutil.which("aecompress")
    if exe is None:
        sys.exit("no aecompress on PATH")
    model = zoo.load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        targeted_file, plain_file = os.path.join(tmp, "t.aec"), os.path.join(tmp, "p.aec")
        for path in IMAGES:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            for name, kind, at in TARGETS:
                data = codec.encode(rgb, at, model=model)
                value = {"size": len(data), "bpp": round(len(data) * 8 / (rgb.shape[0] * rgb.shape[1]), 4),
                         "psnr": round(decoded_psnr(rgb, data, model), 2)}[kind]
                target = [exe, "encode", str(path), "-o", targeted_file, "-f", "-Q", OPTION[kind], str(value)]
                timed(target)  # also the file whose quality the plain encode takes
                written = Path(targeted_file).read_bytes()
                quality = container.unpack(written).header.quality
                plain = [exe, "encode", str(path), "-o", plain_file, "-f", "-Q", "-q", str(quality)]
                targeted_s, plain_s = [], []
                for _ in range(args.repeat):  # interleaved, so that both see the same load
                    targeted_s.append(timed(target))
                    plain_s.append(timed(plain))
                row = {"image": path.name, "pixels": rgb.shape[0] * rgb.shape[1], "target": name, "value": value,
                       "from_quality": at, "quality": quality,
                       "same_file": written == Path(plain_file).read_bytes(),
                       "target_s": round(float(np.median(targeted_s)), 3),
                       "encode_s": round(float(np.median(plain_s)), 3)}
                row["ratio"] = round(row["target_s"] / row["encode_s"], 2)
                rows.append(row)
                print(f"{path.name:28} {name:7} {OPTION[kind]} {value:<8g} -> q {quality:6.2f}  "
                      f"{row['target_s']:6.2f} s / {row['encode_s']:5.2f} s = {row['ratio']:4.2f}x  "
                      f"same file {row['same_file']}", flush=True)
    summary = {name: {"median_ratio": float(np.median([r["ratio"] for r in rows if r["target"] == name])),
                      "max_ratio": max(r["ratio"] for r in rows if r["target"] == name)} for name, _, _ in TARGETS}
    summary["all"] = {"median_ratio": float(np.median([r["ratio"] for r in rows])),
                      "max_ratio": max(r["ratio"] for r in rows)}
    print("\n| target | median ratio | max ratio |\n|---|---|---|")
    for name, s in summary.items():
        print(f"| {name} | {s['median_ratio']:.2f} | {s['max_ratio']:.2f} |")
    out = {"model": model.name, "command": exe, "cores": os.cpu_count(), "repeat": args.repeat,
           "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "summary": summary, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    sys.exit(main())
