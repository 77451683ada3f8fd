"""README's generated sections: the headline of each benchmark set, from the loaded JSON (plot.Results).

Each sits between marker lines that `python -m aecompress.plot OUT` rewrites; nothing in them is
typed in by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .metrics import bpp_at_psnr
from .report import TARGETS_DB, against_jpeg, bd_of, codec_label, num, pct, searched_curves, speed_table, table

START = "<!-- benchmarks:start (generated from benchmarks/results by aecompress bench; do not edit) -->"
END = "<!-- benchmarks:end -->"


def _headline_rows(r, levels: tuple[float, ...]) -> list[list[str]]:
    """Each codec's BD-rate against JPEG and its bpp at these PSNRs (n/a: never reached)."""
    jpeg = r.codecs.get("jpeg", {}).get("results")
    rows = []
    for name in ["aecompress", *searched_curves(r), "jpeg", "webp", "avif", "jpeg2000"]:
        if name in r.codecs:
            res = r.codecs[name]["results"]
            bd = "-" if name == "jpeg" else pct(bd_of(jpeg, res)) if jpeg else "n/a"
            rows.append([codec_label(name), bd] + [num(bpp_at_psnr(res["bpp"], res["psnr-rgb"], db)) for db in levels])
    return rows


def readme_section(r, rel: Path) -> str:
    """A short headline: BD-rates against JPEG, bpp at 30/32/34 dB, each aecompress curve beside
    JPEG, and speed, with the plot."""
    levels = (30.0, 32.0, 34.0)
    rows = _headline_rows(r, levels)
    run = r.extras.get("run", {})
    curves = [f"**{codec_label(n)}** against JPEG at the same bitrate:\n\n{against_jpeg(r, n)}"
              for n in ["aecompress", *searched_curves(r)] if n in r.codecs]
    return "\n\n".join([
        START, f"Kodak ({run.get('images', '?')} images), model `{run.get('model', '?')}`, measured "
        f"{run.get('date', '?')}; full tables in [{rel.as_posix()}/report.md]({rel.as_posix()}/report.md).",
        f"![rate-distortion]({rel.as_posix()}/rd.png)",
        table(["codec", "BD-rate vs JPEG (negative: fewer bits)"] + [f"bpp @ {db:g} dB" for db in levels], rows),
        *curves, speed_table(r), END])


def set_markers(r) -> tuple[str, str]:
    """README markers of the headline of a result set other than Kodak's, e.g. skimage-photos."""
    return (f"<!-- {r.name}:start (generated from its results by python -m aecompress.plot; do not edit) -->",
            f"<!-- {r.name}:end -->")


def set_section(r, rel: Path) -> str:
    """A second set's headline: each codec's BD-rate against JPEG, where each reaches 32/34/36 dB,
    and aecompress's top quality."""
    rows = _headline_rows(r, TARGETS_DB)
    ours = r.codecs["aecompress"]["results"]
    top = int(np.argmax(ours["quality"]))
    run = r.extras.get("run", {})
    start, end = set_markers(r)
    return "\n\n".join([
        start, f"{r.name} ({run.get('images', '?')} images), model `{run.get('model', '?')}`, measured "
        f"{run.get('date', '?')} ([report]({rel.as_posix()}/report.md)); n/a: the curve never reaches that PSNR.",
        table(["codec", "BD-rate vs JPEG"] + [f"bpp @ {db:g} dB" for db in TARGETS_DB], rows),
        f"aecompress at its top quality ({ours['quality'][top]:g}): {ours['bpp'][top]:.3f} bpp, "
        f"{ours['psnr-rgb'][top]:.2f} dB.", end])


def replace_section(readme: Path, start: str, end: str, text: str) -> bool:
    """Replace what lies between two marker lines (inclusive) with text, which carries the markers;
    a README without them is left alone."""
    content = readme.read_text()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        return False
    readme.write_text(pattern.sub(lambda _: text, content))
    return True


def update_readme(readme: Path, r, rel: Path) -> bool:
    return replace_section(readme, START, END, readme_section(r, rel))
