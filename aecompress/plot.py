"""Figures and the report, drawn only from the JSON files a benchmark run wrote.

    results/<set>/*.json --> rd.png, crops.png, report.md (and README's generated section)

Nothing here encodes or measures; rerunning it on the same JSON gives the same outputs.
Run alone with `python -m aecompress.plot [OUT_DIR]` (default: benchmarks).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from .extras import require
from .report import PUBLISHED_ON_PLOT, codec_label

require("matplotlib", "bench", "plotting").use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MEASURED_ORDER = ("aecompress", "aecompress-e2", "jpeg", "jpeg444", "webp", "avif", "avif-s0", "jpeg2000")
EXTRA_FILES = ("run", "sparsity", "crops", "speed-compressai", "memory", "compare")
COLORS = {"aecompress": "black", "aecompress-e2": "dimgray", "jpeg": "tab:blue", "jpeg444": "tab:cyan",
          "webp": "tab:orange", "avif": "tab:green", "avif-s0": "yellowgreen", "jpeg2000": "tab:red",
          "bpg444": "tab:purple", "vtm": "tab:brown",
          "av1": "tab:pink", "bmshj2018-hyperprior": "tab:gray", "mbt2018-mean": "goldenrod",
          "cheng2020-anchor": "teal"}


@dataclass(frozen=True)
class Results:
    """Everything one run wrote: per-codec RD JSON, extras and the published reference curves."""

    name: str  # the image set, e.g. kodak
    codecs: dict[str, dict]  # codec name -> CompressAI-style JSON, in MEASURED_ORDER
    extras: dict[str, dict]  # run, sparsity, crops, speed-compressai, memory (those present)
    published: dict[str, dict]  # key -> {"bpp", "psnr", "source"}
    folder: Path


def load(out: Path, results: Path) -> Results:
    """Read the JSON files of one run (and benchmarks/reference/, when it is there)."""
    if not results.is_dir():
        raise ValueError(f"{results}: no benchmark results (run `aecompress bench` first)")
    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}
    extras = {k: found.pop(k) for k in EXTRA_FILES if k in found}
    rank = lambda n: MEASURED_ORDER.index(n) if n in MEASURED_ORDER else len(MEASURED_ORDER)
    codecs = {k: found[k] for k in sorted(found, key=lambda n: (rank(n), n))}
    ref = out / "reference" / "published_kodak_rd.json"
    published = json.loads(ref.read_text()) if ref.exists() else {}
    return Results(results.name, codecs, extras, published, results)


def rd_plot(r: Results, path: Path, metric: str = "psnr-rgb") -> Path:
    """Measured codecs solid (ours thick), published curves dashed."""
    fig, ax = plt.subplots(figsize=(9, 6.5), dpi=110)
    max_bpp = 2.2
    for name, d in r.codecs.items():
        res = d["results"]
        ours = name.startswith("aecompress")
        ax.plot(res["bpp"], res[metric], "-o", lw=2.6 if ours else 1.4, ms=4 if ours else 3,
                color=COLORS.get(name), label=f"{codec_label(name)} (measured)", zorder=3 if ours else 2)
    if metric == "psnr-rgb" and r.name == "kodak":
        for key in PUBLISHED_ON_PLOT:
            if key in r.published:
                p = r.published[key]
                pts = [(b, q) for b, q in zip(p["bpp"], p["psnr"]) if b <= max_bpp * 1.1]
                ax.plot(*zip(*pts), "--", lw=1.1, color=COLORS.get(key), label=f"{key} (published)")
    ax.set_xlim(0, max_bpp)
    ax.set_xlabel("bits per pixel (file bytes x 8 / pixels)")
    ax.set_ylabel("PSNR-RGB (dB)" if metric == "psnr-rgb" else "MS-SSIM (RGB)")
    ax.set_title(f"{r.name}: rate-distortion, mean over {r.extras.get('run', {}).get('images', '?')} images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def crops_figure(r: Results, path: Path) -> Path | None:
    """Original and each codec's crop side by side, labelled with setting, bpp and PSNR."""
    c = r.extras.get("crops")
    if not c:
        return None
    tiles = []
    for name, e in c["crops"].items():
        im = Image.open(r.folder / "crops" / e["file"]).convert("RGB")
        label = name if name == "original" else f"{name} {e['setting']:g}: {e['bpp']:.3f} bpp, {e['psnr-rgb']:.2f} dB"
        tiles.append((im, label))
    w, h = tiles[0][0].size
    sheet = Image.new("RGB", (len(tiles) * (w + 8) + 8, h + 36), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (im, label) in enumerate(tiles):
        x = 8 + i * (w + 8)
        sheet.paste(im, (x, 8))
        draw.text((x, h + 14), label, fill="black")
    sheet.save(path)
    return path


def render(out: str | Path = "benchmarks", results: str | Path | None = None) -> Path:
    """Draw rd.png, rd-msssim.png, crops.png and report.md in out/; refresh README's section."""
    from . import headline, report

    out = Path(out)
    results = Path(results) if results else _only_results(out)
    r = load(out, results)
    figures = {"rd": rd_plot(r, out / "rd.png"), "rd_msssim": rd_plot(r, out / "rd-msssim.png", "ms-ssim-rgb"),
               "crops": crops_figure(r, out / "crops.png")}
    text = report.markdown(r, {k: v.name for k, v in figures.items() if v})
    (out / "report.md").write_text(text)
    readme = next((d / "README.md" for d in out.resolve().parents if (d / "README.md").exists()), None)
    if readme is not None:
        rel = out.resolve().relative_to(readme.parent)
        if readme.parent == out.resolve().parent:  # benchmarks/: the Kodak headline
            headline.update_readme(readme, r, rel)
        else:  # a second set (benchmarks/photos/): its own markers, where the README has them
            headline.replace_section(readme, *headline.set_markers(r), headline.set_section(r, rel))
    return out / "report.md"


def _only_results(out: Path) -> Path:
    """The one folder of out/results written by `aecompress bench` (it holds run.json)."""
    sets = sorted(p.parent for p in (out / "results").glob("*/run.json"))
    if len(sets) != 1:
        raise ValueError(f"{out}/results: expected one result set, found {len(sets)}")
    return sets[0]


if __name__ == "__main__":
    try:
        print(render(sys.argv[1] if len(sys.argv) > 1 else "benchmarks"))
    except (ValueError, OSError) as e:
        sys.exit(f"aecompress.plot: error: {e}")
