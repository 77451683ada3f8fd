"""Decode the same .aec files under other float kernels, thread counts and devices.

    python benchmarks/cross_device.py [IMAGES...] [--model NAME] [--quality Q]

Encodes each image once (here, default settings), then decodes it in fresh processes: on the
numpy path with 2 and 1 BLAS threads and with OpenBLAS's SSE3 kernels instead of the AVX-512
ones, through torch with 1 thread and with restricted kernels (ONEDNN_MAX_CPU_ISA=SSE41
ATEN_CPU_CAPABILITY=default, which change most float outputs of a convolution), and on CUDA when
present. Prints, for each setting, whether the decoded symbols are identical and how far the
pixels are from the reference decode. Writes benchmarks/results/cross_device.json, with the model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # name: (environment, device)
    "numpy, 2 BLAS threads": ({"OPENBLAS_NUM_THREADS": "2"}, "cpu"),
    "numpy, 1 BLAS thread": ({"OPENBLAS_NUM_THREADS": "1"}, "cpu"),
    "numpy, OpenBLAS SSE3 kernels": ({"OPENBLAS_CORETYPE": "Prescott"}, "cpu"),
    "torch, 1 thread": ({"OMP_NUM_THREADS": "1"}, "torch"),
    "torch, SSE4.1 / default kernels": ({"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}, "torch"),
}

CHILD = """
import hashlib, sys, numpy as np
from aecompress import codec
data = open(sys.argv[1], 'rb').read()
device = sys.argv[3]
_, _, lat = codec.read(data, model=sys.argv[4] or None)
h = hashlib.sha256()
for a in (lat.z_hat, lat.y_symbols, lat.index, lat.mean_int):
    h.update(np.ascontiguousarray(a, dtype='<i8').tobytes())
np.save(sys.argv[2], np.asarray(codec.decode(data, model=sys.argv[4] or None, device=device)))
print(h.hexdigest())
"""


def decode_in_child(aec: Path, out: Path, env: dict, device: str, model: str) -> str:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(aec), str(out), device, model or ""],
                          env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", default=[str(ROOT.parent / "shared/data/kodak/kodim01.png"),
                                                      str(ROOT.parent / "shared/data/kodak/kodim23.png")])
    parser.add_argument("--model", default=None)
    parser.add_argument("--quality", type=float, default=75)
    args = parser.parse_args()

    import torch
    from PIL import Image

    from aecompress import codec, zoo
    from aecompress.metrics import psnr

    settings = dict(SETTINGS)
    if torch.cuda.is_available():
        settings["cuda"] = ({}, "cuda")
    model = zoo.load(args.model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for image_path in args.images:
            original = np.asarray(Image.open(image_path).convert("RGB"))
            aec = Path(tmp) / "x.aec"
            aec.write_bytes(codec.encode(Image.open(image_path), args.quality, model=args.model))
            reference, ref_digest = None, None
            for name, (env, device) in settings.items():
                digest = decode_in_child(aec, Path(tmp) / "x.npy", env, device, args.model)
                pixels = np.load(Path(tmp) / "x.npy")
                if reference is None:
                    reference, ref_digest = pixels, digest
                row = {
                    "image": Path(image_path).name, "setting": name, "symbols_identical": digest == ref_digest,
                    "max_pixel_diff": int(np.abs(pixels.astype(int) - reference.astype(int)).max()),
                    "pixels_differing": float(np.mean(pixels != reference)),
                    "psnr_vs_original": round(psnr(original, pixels), 3),
                }
                results.append(row)
                print(f"{row['image']:>12}  {name:<30} symbols identical: {row['symbols_identical']}  "
                      f"max |diff| {row['max_pixel_diff']}  differing {100 * row['pixels_differing']:.2f}%  "
                      f"PSNR {row['psnr_vs_original']:.2f} dB")
    out = ROOT / "benchmarks" / "results" / "cross_device.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    measured = {"model": model.name, "weights": model.digest.hex(), "quality": args.quality, "results": results}
    out.write_text(json.dumps(measured, indent=1) + "\n")


if __name__ == "__main__":
    main()
