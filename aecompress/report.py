"""The markdown report, built from the loaded JSON (plot.Results); README's sections: headline.py.

Every figure printed here is read from the result files or computed from them (BD-rates, bpp at
a PSNR); nothing is typed in by hand, so the README and report always equal the JSON.
"""

from __future__ import annotations

import re

import numpy as np

from .metrics import bd_rate, bpp_at_psnr

TARGETS_DB = (32.0, 34.0, 36.0)


# The published curves drawn on the Kodak plot
PUBLISHED_ON_PLOT = ("bpg444", "vtm", "av1", "bmshj2018-hyperprior", "mbt2018-mean", "cheng2020-anchor")


def num(v: float | None, fmt: str = ".3f", none: str = "n/a") -> str:
    return none if v is None else format(v, fmt)


def pct(v: float | None) -> str:
    return "n/a (no overlap)" if v is None else f"{v:+.1f}%"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def bd_of(anchor: dict, test: dict) -> float | None:
    return bd_rate(anchor["bpp"], anchor["psnr-rgb"], test["bpp"], test["psnr-rgb"])


def rd_table(r) -> str:
    rows = []
    for name, d in r.codecs.items():
        res = d["results"]
        for i, q in enumerate(res["quality"]):
            rows.append([name, f"{q:g}", f"{res['bpp'][i]:.4f}", f"{res['psnr-rgb'][i]:.2f}",
                         f"{res['ms-ssim-rgb'][i]:.4f}", f"{res['encoding_time'][i] * 1000:.0f}",
                         f"{res['decoding_time'][i] * 1000:.0f}"])
    return table(["codec", "setting", "bpp", "PSNR-RGB dB", "MS-SSIM", "encode ms", "decode ms"], rows)


def _log_bpp_curve(res: dict) -> tuple[np.ndarray, np.ndarray]:
    """(log bpp, PSNR) of a result curve, ordered by rate, for np.interp."""
    order = np.argsort(res["bpp"])
    return np.log(np.array(res["bpp"])[order]), np.array(res["psnr-rgb"])[order]


def jpeg_at_equal_bpp_table(r, name: str = "aecompress") -> str:
    """Each quality of one aecompress curve beside Pillow JPEG (4:2:0) at the same bpp, interpolated
    linearly in log-bpp between JPEG's measured qualities (n/a outside JPEG's measured range)."""
    ours, jpeg = r.codecs.get(name, {}).get("results"), r.codecs.get("jpeg", {}).get("results")
    if not ours or not jpeg:
        return f"_needs both {name} and jpeg results_"
    jb, jp = _log_bpp_curve(jpeg)
    rows = []
    for q, b, p in zip(ours["quality"], ours["bpp"], ours["psnr-rgb"]):
        inside = jb[0] <= np.log(b) <= jb[-1]
        j = float(np.interp(np.log(b), jb, jp)) if inside else None
        rows.append([f"{q:g}", f"{b:.4f}", f"{p:.2f}", num(j, ".2f"), num(None if j is None else p - j, "+.2f")])
    return table(["quality", "bpp", "PSNR-RGB dB", "JPEG PSNR at this bpp", "difference dB"], rows)


def ahead_of_jpeg(r, name: str = "aecompress") -> list[tuple[float, float]]:
    """The bpp intervals where a curve's PSNR is above Pillow JPEG's at the same bpp, both curves
    interpolated linearly in log-bpp between their measured points, over the range both cover.
    The table above judges the measured qualities only; this judges the curve between them."""
    ours, jpeg = r.codecs.get(name, {}).get("results"), r.codecs.get("jpeg", {}).get("results")
    if not ours or not jpeg:
        return []
    return ahead(ours, jpeg)


def ahead(ours: dict, anchor: dict) -> list[tuple[float, float]]:
    """The bpp intervals where the curve `ours` ({"bpp": [...], "psnr-rgb": [...]}) is above the
    curve `anchor`, as `ahead_of_jpeg` judges them."""
    (ob, op), (jb, jp) = _log_bpp_curve(ours), _log_bpp_curve(anchor)
    lo, hi = max(ob[0], jb[0]), min(ob[-1], jb[-1])
    if lo >= hi:
        return []
    grid = np.linspace(lo, hi, 4001)
    ahead = np.interp(grid, ob, op) > np.interp(grid, jb, jp)
    edges = np.flatnonzero(np.diff(ahead.astype(int))) + 1  # where the sign changes
    runs = np.split(np.arange(len(grid)), edges)
    return [(float(np.exp(grid[i[0]])), float(np.exp(grid[i[-1]]))) for i in runs if ahead[i[0]]]


def ahead_of_jpeg_sentence(r, name: str = "aecompress") -> str:
    ranges = ahead_of_jpeg(r, name)
    between = "Between measured points (both curves linear in log-bpp, over the range both cover)"
    if not ranges:
        return f"{between}, {codec_label(name)} is nowhere above JPEG."
    where = ", ".join(f"{a:.3f}-{b:.3f}" for a, b in ranges)
    return f"{between}, {codec_label(name)} is above JPEG at {where} bpp."


def against_jpeg(r, name: str = "aecompress") -> str:
    """One curve against JPEG: its qualities beside JPEG's PSNR, then where the curve is ahead."""
    return f"{jpeg_at_equal_bpp_table(r, name)}\n\n{ahead_of_jpeg_sentence(r, name)}"


def bd_table(r) -> str:
    jpeg, ours = r.codecs.get("jpeg", {}).get("results"), r.codecs.get("aecompress", {}).get("results")
    rows = []
    for name, d in r.codecs.items():
        res = d["results"]
        at = [num(bpp_at_psnr(res["bpp"], res["psnr-rgb"], t)) for t in TARGETS_DB]
        vs_ours = "-" if name == "aecompress" else pct(bd_of(res, ours)) if ours else "n/a"
        rows.append([name, "-" if name == "jpeg" else pct(bd_of(jpeg, res)) if jpeg else "n/a", vs_ours, *at])
    return table(["codec (measured)", "BD-rate vs JPEG", "aecompress vs it"]
                  + [f"bpp @ {t:g} dB" for t in TARGETS_DB], rows)


def published_table(r) -> str:
    pub_jpeg = r.published.get("jpeg")
    pub_jpeg = {"bpp": pub_jpeg["bpp"], "psnr-rgb": pub_jpeg["psnr"]} if pub_jpeg else None
    ours = r.codecs.get("aecompress", {}).get("results")
    rows = []
    for key in ("jpeg",) + tuple(k for k in _published_keys(r) if k != "jpeg"):
        p = r.published[key]
        curve = {"bpp": p["bpp"], "psnr-rgb": p["psnr"]}
        at = [num(bpp_at_psnr(p["bpp"], p["psnr"], t)) for t in TARGETS_DB]
        rows.append([key, pct(bd_of(pub_jpeg, curve)) if pub_jpeg else "n/a",
                     pct(bd_of(curve, ours)) if ours else "n/a", *at, p.get("source", "")[:80]])
    return table(["system (published)", "BD-rate vs published JPEG", "aecompress (measured) vs it"]
                  + [f"bpp @ {t:g} dB" for t in TARGETS_DB] + ["source"], rows)


def _published_keys(r) -> tuple[str, ...]:
    return tuple(k for k in PUBLISHED_ON_PLOT if k in r.published) if r.name == "kodak" else ()


def speed_table(r) -> str:
    rows = []
    for name, d in r.codecs.items():
        res = d["results"]
        mean = lambda xs: sum(xs) / len(xs)
        rows.append([name, f"{mean(res['encoding_time']):.3f}", f"{mean(res['decoding_time']):.3f}",
                     "mean over all settings and images"])
    ca = r.extras.get("speed-compressai")
    if ca and ca.get("available"):
        rows.append([ca["name"], f"{ca['encoding_time']:.3f}", f"{ca['decoding_time']:.3f}",
                     f"{ca['image']}, CompressAI {ca.get('version', '?')}, {ca['description']}"])
        ours = r.codecs.get("aecompress")
        if ours and ca["image"] in ours["images"]:
            j = ours["images"].index(ca["image"])
            enc = [row[j] for row in ours["per_image"]["encoding_time"]]
            dec = [row[j] for row in ours["per_image"]["decoding_time"]]
            rows.append(["aecompress (same image)", f"{sum(enc) / len(enc):.3f}", f"{sum(dec) / len(dec):.3f}",
                         f"{ca['image']}, mean over its qualities"])
    elif ca:
        rows.append([ca["name"], "-", "-", f"not run: {ca.get('reason', '?')}"])
    return table(["codec", "encode s/image", "decode s/image", "what"], rows)


def memory_table(r) -> str:
    m = r.extras.get("memory")
    if not m:
        return "_not measured in this run (`--quick` skips it)_"
    row = lambda k: [k, num(m[k].get("max_rss_mb"), ".0f"), num(m[k].get("seconds"), ".1f"),
                     "ok" if m[k].get("ok") else f"failed: {m[k].get('error')}"]
    return (f"{m['image']} ({m['pixels'] / 1e6:.1f} MP), {m['threads']} thread(s), address space "
            f"limited to {m['limit_gb']:g} GB:\n\n"
            + table(["command", "peak RSS MB", "seconds", "result"], [row("encode"), row("decode")]))


def sparsity_table(r) -> str:
    s, ours = r.extras.get("sparsity"), r.codecs.get("aecompress")
    if not s:
        return "_no sparsity data_"
    res = s["results"]
    bpp = dict(zip(ours["results"]["quality"], ours["results"]["bpp"])) if ours else {}
    rows = [[f"{q:g}", num(bpp.get(q), ".4f"), f"{100 * z:.1f}%", f"{nz:.1f} / {res['channels']}",
             f"{c99:.1f} / {res['channels']}"]
            for q, z, nz, c99 in zip(res["quality"], res["zero_share"], res["nonzero_channels"], res["channels_99"])]
    return table(["quality", "bpp", "zero symbols", "channels with any non-zero", "channels for 99% of y bits"], rows)


def markdown(r, figures: dict[str, str]) -> str:
    run = r.extras.get("run", {})
    crops = r.extras.get("crops")
    parts = [
        f"# Benchmark report: {r.name}",
        f"Generated from `{r.folder.as_posix()}`: {run.get('images', '?')} images, {run.get('date', '?')}, "
        f"{run.get('machine', '?')}, torch {run.get('torch', '?')} with {run.get('torch_threads', '?')} "
        f"thread(s), Pillow {run.get('pillow', '?')}, model `{run.get('model', '?')}` "
        f"({run.get('model_digest', '?')}){', QUICK run (subset)' if run.get('quick') else ''}.",
        "bpp = file bytes x 8 / pixels (headers included), PSNR on 8-bit RGB and MS-SSIM averaged per image; "
        "times per image, warm, median of repeats. Published curves are other systems' figures, not measured here.",
        f"![rate-distortion]({figures.get('rd', 'rd.png')})",
        "## BD-rate (PSNR-RGB, pchip in log-rate, overlapping range) and bpp at equal PSNR", bd_table(r),
        "## aecompress against JPEG at the same bitrate", against_jpeg(r),
    ]
    for name in searched_curves(r):
        parts += [f"### {codec_label(name)} against JPEG at the same bitrate", against_jpeg(r, name)]
    if _published_keys(r):
        parts += ["### Published figures (dashed on the plot)", published_table(r)]
    parts += ["## Speed", speed_table(r), "## Peak memory", memory_table(r),
              "## Sparsity of the code (aecompress)", sparsity_table(r)]
    if crops:
        parts += [f"## Crops at equal file size ({crops['image']}, box {crops['box']})",
                  "Each codec at its largest setting whose file is not larger than aecompress's.",
                  f"![crops]({figures.get('crops', 'crops.png')})"]
    if r.extras.get("compare"):
        parts += ["## See it: comparison pages", compare_links(r)]
    parts += [f"## MS-SSIM\n\n![rd-msssim]({figures.get('rd_msssim', 'rd-msssim.png')})",
              "## Every point", rd_table(r)]
    return "\n\n".join(parts) + "\n"


def compare_links(r) -> str:
    """The pages `aecompress compare` made for one image (results/compare.json): a link and the
    settings each codec got at that size."""
    c = r.extras["compare"]
    lines = [f"One self-contained HTML page per rate for {c['image']} (open it in a browser: split view, "
             "1:1 and 4x zoom; each codec at its highest quality whose file fits aecompress's):", ""]
    for p in c["pages"]:
        codecs = ", ".join(f"{k} {e['setting']} ({e['bytes']} B, {e['psnr-rgb']:.2f} dB)"
                           for k, e in p["codecs"].items())
        lines.append(f"* [{p['bpp']:g} bpp]({p['file']}): {codecs}")
    return "\n".join(lines)


def searched_curves(r) -> list[str]:
    """The slower aecompress curves (encode --effort N), named aecompress-eN."""
    return [n for n in r.codecs if re.fullmatch(r"aecompress-e\d", n)]


def codec_label(name: str) -> str:
    """How a result file's codec is named to readers: aecompress-e2 -> aecompress --effort 2."""
    return f"aecompress --effort {name[-1]}" if re.fullmatch(r"aecompress-e\d", name) else name
