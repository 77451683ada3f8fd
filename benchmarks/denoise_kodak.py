"""Denoising benchmark: Kodak with added noise, PSNR against the CLEAN originals vs bits per pixel.

    python benchmarks/denoise_kodak.py                  # sigma 0 (clean), 15, 25, 50; all 24 images
    python benchmarks/denoise_kodak.py --images 2 --sigmas 25 --out /tmp/dn   # a smoke run

Each Kodak image gets white Gaussian noise of standard deviation sigma (0..255 scale, a fixed
seed per image and sigma), clipped and stored in 8 bits; sigma 0 is the clean set, where
`--denoise auto` should cost nothing. Pipelines, every size a real file:

    aecompress --denoise   encode --denoise auto (the level is estimated from the noisy image)
    aecompress             the same model without denoising
    jpeg                   Pillow JPEG of the noisy image
    nlm + jpeg             scikit-image non-local means (sigma estimated), then JPEG
    wavelet + jpeg         scikit-image wavelet denoising (BayesShrink), then JPEG

A user picks the setting that gives the best picture for its size, so comparisons use each
pipeline's Pareto front (no other setting of it is both smaller and better); the raw points are
in the JSON. Writes results/denoise/sigma<S>.json, denoise.png and denoise.md under --out.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import codec, metrics, zoo

HERE = Path(__file__).resolve().parent
KODAK = HERE.parent.parent / "shared" / "data" / "kodak"
QUALITIES = (1, 10, 25, 40, 55, 70, 85, 100)
JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
OURS = "aecompress --denoise"


def add_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([int(sigma * 10), seed])
    return np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def jpeg_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def nlm(noisy: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_nl_means, estimate_sigma

    x = noisy / 255.0
    sigma = float(estimate_sigma(x, channel_axis=-1, average_sigmas=True))
    out = denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
                           channel_axis=-1)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def wavelet(noisy: np.ndarray) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    out = denoise_wavelet(noisy / 255.0, method="BayesShrink", mode="soft", channel_axis=-1,
                          convert2ycbcr=True, rescale_sigma=True)
    return np.clip(np.round(out * 255), 0, 255).astype(np.uint8)


def pipelines(model: zoo.CodingModel) -> dict:
    """name -> (settings, prefilter or None, encode(rgb, setting) -> bytes, decode(bytes) -> rgb)."""
    ours = lambda denoise: lambda rgb, q: codec.encode(rgb, q, model=model, denoise=denoise)
    back = lambda data: np.asarray(codec.decode(data, model=model).convert("RGB"))
    return {
        OURS: (QUALITIES, None, ours("auto"), back),
        "aecompress": (QUALITIES, None, ours(None), back),
        "jpeg": (JPEG_QUALITIES, None, jpeg_bytes, jpeg_pixels),
        "nlm + jpeg": (JPEG_QUALITIES, nlm, jpeg_bytes, jpeg_pixels),
        "wavelet + jpeg": (JPEG_QUALITIES, wavelet, jpeg_bytes, jpeg_pixels),
    }


def measure(model: zoo.CodingModel, files: list[Path], sigma: float, log) -> dict:
    clean = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    noisy = [add_noise(c, sigma, i) for i, c in enumerate(clean)]
    result = {"sigma": sigma, "images": [f.name for f in files],
              "noisy_psnr": float(np.mean([metrics.psnr(c, n) for c, n in zip(clean, noisy)])) if sigma else None,
              "auto_levels": [codec.noise_level(model, n, "auto") for n in noisy], "pipelines": {}}
    for name, (settings, prefilter, encode, decode) in pipelines(model).items():
        start = time.perf_counter()
        inputs = [prefilter(n) for n in noisy] if prefilter else noisy
        filter_s = (time.perf_counter() - start) / len(files)
        bpp, psnr = [], []
        for s in settings:
            sizes, quality = [], []
            for c, x in zip(clean, inputs):
                data = encode(x, s)
                sizes.append(len(data) * 8 / (c.shape[0] * c.shape[1]))
                quality.append(metrics.psnr(c, decode(data)))
            bpp.append(float(np.mean(sizes)))
            psnr.append(float(np.mean(quality)))
        result["pipelines"][name] = {"settings": list(settings), "bpp": bpp, "psnr": psnr,
                                     "filter_seconds_per_image": round(filter_s, 3)}
        log(f"sigma {sigma:g} {name}: " + ", ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(bpp, psnr)))
    return result


def pareto(bpp: list[float], psnr: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """The settings no other setting beats on both size and quality, by rising bpp."""
    order = np.argsort(bpp)
    b, p = np.asarray(bpp)[order], np.asarray(psnr)[order]
    keep = [i for i in range(len(b)) if p[i] > max(p[:i], default=-np.inf)]
    return b[keep], p[keep]


def psnr_at(front: tuple[np.ndarray, np.ndarray], bpp: float) -> float | None:
    """PSNR of a front at this bpp (linear in log bpp), None outside its measured range."""
    b, p = front
    if not b[0] <= bpp <= b[-1]:
        return None
    return float(np.interp(np.log(bpp), np.log(b), p))


def comparison(result: dict) -> tuple[list[list[str]], dict[str, float | None]]:
    fronts = {n: pareto(d["bpp"], d["psnr"]) for n, d in result["pipelines"].items()}
    others = [n for n in fronts if n != OURS]
    ours = result["pipelines"][OURS]
    rows = []
    for q, b, p in zip(ours["settings"], ours["bpp"], ours["psnr"]):
        row = [f"{q:g}", f"{b:.3f}", f"{p:.2f}"]
        for n in others:
            v = psnr_at(fronts[n], b)
            row.append("n/a" if v is None else f"{v:.2f} ({p - v:+.2f})")
        rows.append(row)
    bd = {n: metrics.bd_rate(*fronts[n], *fronts[OURS]) for n in others}
    return rows, bd


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def report(results: list[dict], figure: str) -> str:
    parts = [
        "# Denoising benchmark: noisy Kodak, PSNR against the clean originals",
        "",
        "Regenerate: `python benchmarks/denoise_kodak.py` (figures below come from "
        "`results/denoise/*.json`, written by the same run).",
        "",
        f"Model `{results[0]['model']}`; {len(results[0]['images'])} Kodak images with white Gaussian noise, "
        "clipped to 8 bits. Every pipeline is compared on its Pareto front (the settings no other setting "
        "of it beats on both size and PSNR). `aecompress --denoise` uses `auto`: the noise level is estimated "
        "from the noisy image.",
        "",
        f"![PSNR against the clean image vs bpp]({figure})",
    ]
    for r in results:
        rows, bd = comparison(r)
        others = [n for n in r["pipelines"] if n != OURS]
        title = (f"sigma {r['sigma']:g} (the noisy input itself: {r['noisy_psnr']:.2f} dB)" if r["sigma"]
                 else "sigma 0: clean images (what `--denoise auto` costs where there is no noise)")
        levels = r["auto_levels"]
        parts += [
            "", f"## {title}", "",
            f"`--denoise auto` chose levels {min(levels):g} to {max(levels):g} (mean {np.mean(levels):.1f}); "
            f"{sum(v == 0 for v in levels)} of {len(levels)} images were left as they are.", "",
            f"Each `{OURS}` quality, and every other pipeline's PSNR at the same bpp (difference in brackets; "
            "n/a outside the range it covers):", "",
            table(["q", "bpp", "PSNR dB"] + [f"{n} at this bpp" for n in others], rows), "",
            f"Bits `{OURS}` needs for equal PSNR, against each pipeline (Bjontegaard delta rate over the "
            "shared PSNR range; negative: fewer bits):", "",
            table(["against", "BD-rate"], [[n, "no shared PSNR range" if v is None else f"{v:+.1f}%"]
                                            for n, v in bd.items()]),
            "", "Time to denoise before JPEG, per image: " + ", ".join(
                f"{n} {d['filter_seconds_per_image']:.2f} s" for n, d in r["pipelines"].items()
                if d["filter_seconds_per_image"] > 0.001) + ".",
        ]
    return "\n".join(parts) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.5), squeeze=False)
    for ax, r in zip(axes[0], results):
        for name, d in r["pipelines"].items():
            b, p = pareto(d["bpp"], d["psnr"])
            ax.plot(b, p, "o-" if name == OURS else ".-", label=name, lw=2.2 if name == OURS else 1.2)
        if r["noisy_psnr"]:
            ax.axhline(r["noisy_psnr"], color="grey", ls=":", lw=1, label="noisy input")
        ax.set(title=f"Kodak + noise, sigma {r['sigma']:g}" if r["sigma"] else "Kodak, clean", xlabel="bits per pixel",
               ylabel="PSNR against the clean image (dB)", xlim=(0, 2.5))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(KODAK))
    ap.add_argument("--model", default=None, help="weights name or .pt file (default: the default model)")
    ap.add_argument("--sigmas", default="0,15,25,50")
    ap.add_argument("--images", type=int, default=None, help="only the first N images")
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    model = zoo.load(args.model)
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")[: args.images]
    out = Path(args.out)
    (out / "results" / "denoise").mkdir(parents=True, exist_ok=True)
    log = lambda line: print(line, file=sys.stderr, flush=True)
    results = []
    for sigma in (float(s) for s in args.sigmas.split(",")):
        r = measure(model, files, sigma, log)
        r["model"] = f"{model.name} ({model.digest.hex()})"
        (out / "results" / "denoise" / f"sigma{sigma:g}.json").write_text(json.dumps(r, indent=1) + "\n")
        results.append(r)
    plot(results, out / "denoise.png")
    (out / "denoise.md").write_text(report(results, "denoise.png"))
    for r in results:
        _, bd = comparison(r)
        print(f"sigma {r['sigma']:g}: BD-rate of {OURS} vs " + ", ".join(
            f"{n} {'n/a' if v is None else f'{v:+.1f}%'}" for n, v in bd.items()))


if __name__ == "__main__":
    main()
