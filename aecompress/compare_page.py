"""The comparison page, filled in by `render` from compare.py's results. Its HTML, CSS and
JavaScript (plain ES2017, no modules, no network) are package files beside this module:
compare_page.html, whose @NAME@ slots are each filled once (the style and the script too),
compare_page.css and compare_page.js.

The page holds every picture once, as a hidden <img> with a data: URI (id img-CODEC-REGION, or
img-CODEC-fit for a large image's preview); the two <img>s of the viewer show copies of them.
State lives in one object and is mirrored on #viewer's data- attributes (zoom, region, cx, cy,
scale, left, right, split, layout), which the browser test reads.
"""

from __future__ import annotations

import html
import json
import re
from importlib.resources import files


def _part(suffix: str) -> str:
    """compare_page.html, .css or .js, shipped beside this module."""
    return files("aecompress").joinpath("compare_page" + suffix).read_text(encoding="utf-8")


def _num(v: float | None, fmt: str) -> str:
    return "&ndash;" if v is None else format(v, fmt)


def _row(c, pixels: int) -> str:
    cells = [html.escape(c.label), html.escape(c.setting), f"{c.nbytes:,}", f"{c.nbytes * 8 / pixels:.4f}",
             _num(c.psnr, ".2f"), _num(c.ms_ssim, ".4f"), _num(c.encode_s, ".3f"), _num(c.decode_s, ".3f")]
    first, rest = f'<th scope="row">{cells[0]}</th>', "".join(f"<td>{x}</td>" for x in cells[1:])
    return f'<tr data-key="{c.key}">{first}{rest}<td class="where"></td></tr>'


def render(name: str, width: int, height: int, coded, regions, preview, images: dict[str, tuple[str, int, int]],
           notes: list[str]) -> str:
    """The page: coded[0] is the original, coded[1] aecompress; images maps CODEC-REGION (and
    CODEC-fit) to (data URI, width, height)."""
    ours = coded[1]
    labels = {c.key: c.label.split(" (")[0] for c in coded}
    title = f"aecompress compare: {name} at {ours.nbytes:,} bytes"
    others = ", ".join(labels[c.key] for c in coded[2:])
    summary = (f"{width}x{height} ({width * height / 1e6:.2f} MP). {labels['aecompress']} {ours.setting}: "
               f"{ours.nbytes:,} bytes, {ours.nbytes * 8 / (width * height):.4f} bpp; {others} at the highest "
               "quality whose file fits.")
    options = "".join(f'<option value="{c.key}">{html.escape(labels[c.key])}</option>' for c in coded)
    region = ""
    if preview:
        choices = "".join(f'<option value="{n}">{n + 1}: x {b.x}, y {b.y}</option>' for n, b in enumerate(regions))
        region = f'<label>Region <select id="region">{choices}</select></label>'
    store = "".join(f'<img id="img-{key}" src="{uri}" width="{w}" height="{h}" data-w="{w}" data-h="{h}" '
                    f'alt="{html.escape(labels[key.rsplit("-", 1)[0]])}, {_where(key, regions)}">'
                    for key, (uri, w, h) in images.items())
    data = {"width": width, "height": height, "preview": list(preview) if preview else None,
            "regions": [{"x": b.x, "y": b.y, "w": b.w, "h": b.h} for b in regions],
            "codecs": [{"key": c.key, "name": labels[c.key]} for c in coded],
            "initial": ["aecompress", coded[2].key if len(coded) > 2 else "original"]}
    fill = {"TITLE": html.escape(title), "CSS": _part(".css"), "SUMMARY": html.escape(summary), "OPTIONS": options,
            "REGION": region, "ROWS": "".join(_row(c, width * height) for c in coded),
            "NOTES": "".join(f"<p>{html.escape(n)}</p>" for n in notes), "IMAGES": store,
            "DATA": json.dumps(data).replace("<", "\\u003c"), "SCRIPT": _part(".js")}
    return re.sub(r"@([A-Z]+)@", lambda m: fill[m.group(1)], _part(".html"))  # one pass: no value is read again


def _where(key: str, regions) -> str:
    part = key.rsplit("-", 1)[1]
    if part == "fit":
        return "whole image, downscaled"
    b = regions[int(part)]
    return f"region {int(part) + 1} ({b.w}x{b.h} at x {b.x}, y {b.y})" if len(regions) > 1 else "whole image"
