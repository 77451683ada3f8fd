"""The comparison page's HTML, CSS and JavaScript (plain ES2017, no modules, no network), filled in
by `render` from compare.py's results.

The page holds every picture once, as a hidden <img> with a data: URI (id img-CODEC-REGION, or
img-CODEC-fit for a large image's preview); the two <img>s of the viewer show copies of them.
State lives in one object and is mirrored on #viewer's data- attributes (zoom, region, cx, cy,
scale, left, right, split, layout), which the browser test reads.
"""

from __future__ import annotations

import html
import json
import re

CSS = """
:root { color-scheme: light dark; --accent: #1d5fd6; font-family: system-ui, sans-serif; }
body { margin: 0; padding: 12px; line-height: 1.4; }
main { max-width: 1600px; margin: 0 auto; }
h1 { font-size: 1.25rem; margin: 0 0 4px; overflow-wrap: anywhere; }
p { margin: 4px 0; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 14px; align-items: center; margin: 10px 0; }
.controls label, .group { display: inline-flex; gap: 6px; align-items: center; }
button, select, input { font: inherit; }
button, select { min-height: 36px; padding: 4px 10px; border-radius: 6px; border: 1px solid #8889;
  background: Canvas; color: CanvasText; }
button[aria-pressed="true"] { background: var(--accent); border-color: var(--accent); color: #fff; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
#stage { margin: 0 auto; min-width: min(100%, 320px); }
#viewer { position: relative; display: grid; width: 100%; max-height: 75vh; overflow: hidden;
  background: #6668; touch-action: none; user-select: none; cursor: grab; }
#viewer.dragging { cursor: grabbing; }
#viewer.sbs { grid-template-columns: 1fr 1fr; gap: 4px; }
.pane { position: relative; overflow: hidden; grid-area: 1 / 1; min-width: 0; min-height: 0; }
#viewer.sbs .pane { grid-area: auto; }
#pane-left { z-index: 1; }
.pane img { position: absolute; left: 0; top: 0; max-width: none; transform-origin: 0 0; }
.pane img.pixelated { image-rendering: pixelated; }
.tag { position: absolute; top: 6px; z-index: 3; padding: 1px 8px; border-radius: 4px; background: #000b;
  color: #fff; font-size: 0.85rem; pointer-events: none; white-space: nowrap; }
#pane-left .tag { left: 6px; }
#pane-right .tag { right: 6px; }
.mark { position: absolute; z-index: 2; border: 2px solid #ffd400; box-shadow: 0 0 0 1px #000a; color: #ffd400;
  font-weight: bold; padding: 0 4px; text-shadow: 0 0 3px #000; pointer-events: none; }
#divider { position: absolute; top: 0; bottom: 0; z-index: 4; width: 28px; margin-left: -14px; cursor: ew-resize; }
#divider::before { content: ""; position: absolute; left: 13px; top: 0; bottom: 0; width: 2px; background: #fff;
  box-shadow: 0 0 0 1px #0009; }
#viewer.sbs #divider { display: none; }
.split { display: flex; gap: 8px; align-items: center; margin: 6px 0; }
.split input { flex: 1; min-height: 28px; }
.table-wrap { overflow-x: auto; margin: 10px 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; text-align: right; border-bottom: 1px solid #8885; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.shown > * { background: #1d5fd622; }
.notes { font-size: 0.9rem; max-width: 80ch; }
@media (max-width: 640px) {
  body { padding: 6px; }
  #viewer.sbs { grid-template-columns: 1fr; }
  .controls { gap: 6px 8px; }
  th, td { padding: 3px 6px; }
}
"""

SCRIPT = r"""
(function () {
  "use strict";
  const P = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const viewer = $("viewer"), panes = [$("pane-left"), $("pane-right")];
  const shown = panes.map((p) => p.querySelector("img"));
  const ZOOMS = [0, 1, 4];
  const KEYS = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  const narrow = window.matchMedia("(max-width: 640px)");
  const labels = {};
  P.codecs.forEach((c) => { labels[c.key] = c.name; });
  const st = {sides: P.initial.slice(), zoom: 0, region: 0, cx: 0, cy: 0, split: 50, sbs: false};

  // The picture the panes show: a large image's preview at Fit, else a region at full resolution.
  function view() {
    if (st.zoom === 0 && P.preview) return {key: "fit", w: P.preview[0], h: P.preview[1]};
    const r = P.regions[st.region];
    return {key: String(st.region), w: r.w, h: r.h};
  }
  function paneSize() { return [panes[1].clientWidth, panes[1].clientHeight]; }
  function scaleOf(v) {
    const [pw, ph] = paneSize();
    return st.zoom === 0 ? Math.min(pw / v.w, ph / v.h) : st.zoom;
  }
  function clampCenter(v, s) {
    const [pw, ph] = paneSize();
    const one = (c, len, pane) => len * s <= pane ? len / 2
      : Math.min(Math.max(c, pane / (2 * s)), len - pane / (2 * s));
    st.cx = one(st.cx, v.w, pw);
    st.cy = one(st.cy, v.h, ph);
  }

  function render() {
    viewer.classList.toggle("sbs", st.sbs);
    const stacked = st.sbs && narrow.matches;
    const ratio = P.width * (st.sbs && !stacked ? 2 : 1) / (P.height * (stacked ? 2 : 1));
    viewer.style.aspectRatio = String(ratio);
    $("stage").style.maxWidth = "calc(75vh * " + ratio.toFixed(4) + ")";  // as wide as 75vh of the picture
    const v = view(), s = scaleOf(v);
    clampCenter(v, s);
    const [pw, ph] = paneSize(), px = 1 / (window.devicePixelRatio || 1);
    const snap = (x) => Math.round(x / px) * px;
    const tx = snap(pw / 2 - st.cx * s), ty = snap(ph / 2 - st.cy * s);
    shown.forEach((img, i) => {
      const id = "img-" + st.sides[i] + "-" + v.key;
      if (img.dataset.shows !== id) { img.src = $(id).src; img.dataset.shows = id; img.alt = $(id).alt; }
      img.style.width = v.w + "px";
      img.style.height = v.h + "px";
      img.style.transform = "translate(" + tx + "px, " + ty + "px) scale(" + s + ")";
      img.classList.toggle("pixelated", s >= 1);
      const name = labels[st.sides[i]];
      panes[i].querySelector(".tag").textContent = i ? name + " \u25B6" : "\u25C0 " + name;
      drawMarks(panes[i].querySelector(".marks"), v, s, tx, ty);
    });
    panes[0].style.clipPath = st.sbs ? "none" : "inset(0 " + (100 - st.split) + "% 0 0)";
    $("divider").style.left = st.split + "%";
    $("split").disabled = st.sbs;
    document.querySelectorAll("button[data-zoom]").forEach((b) => {
      b.setAttribute("aria-pressed", String(Number(b.dataset.zoom) === st.zoom));
    });
    $("layout").setAttribute("aria-pressed", String(st.sbs));
    $("left").value = st.sides[0];
    $("right").value = st.sides[1];
    if ($("region")) $("region").value = String(st.region);
    document.querySelectorAll("#stats tbody tr").forEach((tr) => {
      const where = ["left", "right"].filter((_, i) => st.sides[i] === tr.dataset.key);
      tr.classList.toggle("shown", where.length > 0);
      tr.querySelector(".where").textContent = where.join(", ");
    });
    Object.assign(viewer.dataset, {zoom: st.zoom, region: st.region, cx: st.cx.toFixed(1), cy: st.cy.toFixed(1),
      scale: s.toFixed(4), left: st.sides[0], right: st.sides[1], split: st.split.toFixed(1),
      layout: st.sbs ? "side-by-side" : "split"});
  }

  // Boxes of a large image's regions, on its preview at Fit.
  function drawMarks(layer, v, s, tx, ty) {
    layer.textContent = "";
    if (v.key !== "fit") return;
    const k = P.preview[0] / P.width * s;
    P.regions.forEach((r, n) => {
      const m = document.createElement("div");
      m.className = "mark";
      m.textContent = String(n + 1);
      Object.assign(m.style, {left: (tx + r.x * k) + "px", top: (ty + r.y * k) + "px",
        width: (r.w * k) + "px", height: (r.h * k) + "px"});
      layer.appendChild(m);
    });
  }

  // Zoom to level z; at: a point of the current view to centre on (a click at Fit). z null: the
  // first level at which the picture is larger than the pane (1:1, or 4x for a small one).
  function setZoom(z, at) {
    if (z === st.zoom) return;
    if (P.preview && st.zoom === 0) {
      const ix = at ? at[0] * P.width / P.preview[0] : null, iy = at ? at[1] * P.height / P.preview[1] : null;
      if (at) st.region = nearestRegion(ix, iy);
      const r = P.regions[st.region];
      [st.cx, st.cy] = at ? [ix - r.x, iy - r.y] : [r.w / 2, r.h / 2];
    } else if (at) {
      [st.cx, st.cy] = at;
    }
    if (z === null) {
      const r = P.regions[st.region], [pw, ph] = paneSize();
      z = r.w > pw || r.h > ph ? 1 : 4;
    }
    st.zoom = z;
    render();
  }
  function zoomStep(d) {
    setZoom(ZOOMS[Math.min(ZOOMS.length - 1, Math.max(0, ZOOMS.indexOf(st.zoom) + d))]);
  }
  function nearestRegion(x, y) {
    const gap = (r) => Math.hypot(Math.max(r.x - x, 0, x - r.x - r.w), Math.max(r.y - y, 0, y - r.y - r.h));
    let best = 0;
    P.regions.forEach((r, n) => { if (gap(r) < gap(P.regions[best])) best = n; });
    return best;
  }
  function pointIn(e) {
    const pane = panes.find((p) => { const b = p.getBoundingClientRect();
      return st.sbs && e.clientX >= b.left && e.clientX < b.right && e.clientY >= b.top && e.clientY < b.bottom; })
      || panes[1];
    const b = pane.getBoundingClientRect(), v = view(), s = scaleOf(v), [pw, ph] = paneSize();
    return [(e.clientX - b.left - (pw / 2 - st.cx * s)) / s, (e.clientY - b.top - (ph / 2 - st.cy * s)) / s];
  }

  let drag = null;
  viewer.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    drag = {x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, moved: false, split: e.target.id === "divider"};
    viewer.setPointerCapture(e.pointerId);
    viewer.classList.add("dragging");
  });
  viewer.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (drag.split) {
      const b = viewer.getBoundingClientRect();
      st.split = Math.min(100, Math.max(0, (e.clientX - b.left) / b.width * 100));
      $("split").value = String(Math.round(st.split));
    } else {
      const dx = e.clientX - drag.x, dy = e.clientY - drag.y, s = scaleOf(view());
      drag.moved = drag.moved || Math.hypot(e.clientX - drag.x0, e.clientY - drag.y0) > 3;
      st.cx -= dx / s;
      st.cy -= dy / s;
      drag.x = e.clientX;
      drag.y = e.clientY;
    }
    render();
  });
  const endDrag = (e) => {
    if (drag && e.type === "pointerup" && !drag.moved && !drag.split && st.zoom === 0) setZoom(null, pointIn(e));
    drag = null;
    viewer.classList.remove("dragging");
  };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || /^(SELECT|INPUT|TEXTAREA)$/.test(e.target.tagName)) return;
    if (Object.prototype.hasOwnProperty.call(KEYS, e.key)) {
      const v = view(), s = scaleOf(v), [pw, ph] = paneSize(), was = [st.cx, st.cy];
      const f = e.shiftKey ? 0.5 : 0.125;
      st.cx += KEYS[e.key][0] * f * pw / s;
      st.cy += KEYS[e.key][1] * f * ph / s;
      clampCenter(v, s);
      if (st.cx !== was[0] || st.cy !== was[1]) { e.preventDefault(); render(); }
    } else if (e.key === "+" || e.key === "=") {
      e.preventDefault();
      zoomStep(1);
    } else if (e.key === "-" || e.key === "_") {
      e.preventDefault();
      zoomStep(-1);
    }
  });
  document.querySelectorAll("button[data-zoom]").forEach((b) => {
    b.addEventListener("click", () => setZoom(Number(b.dataset.zoom)));
  });
  $("left").addEventListener("change", (e) => { st.sides[0] = e.target.value; render(); });
  $("right").addEventListener("change", (e) => { st.sides[1] = e.target.value; render(); });
  $("swap").addEventListener("click", () => { st.sides.reverse(); render(); });
  $("layout").addEventListener("click", () => { st.sbs = !st.sbs; render(); });
  $("split").addEventListener("input", (e) => { st.split = Number(e.target.value); render(); });
  if ($("region")) {
    $("region").addEventListener("change", (e) => {
      st.region = Number(e.target.value);
      const r = P.regions[st.region];
      [st.cx, st.cy] = [r.w / 2, r.h / 2];
      if (st.zoom === 0) st.zoom = 1;
      render();
    });
  }
  window.addEventListener("resize", render);
  narrow.addEventListener("change", render);
  render();
})();
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@TITLE@</title>
<style>@CSS@</style>
</head>
<body>
<main>
<h1>@TITLE@</h1>
<p>@SUMMARY@</p>
<div class="controls">
  <label>Left <select id="left">@OPTIONS@</select></label>
  <button type="button" id="swap" aria-label="Swap left and right">&#8644; Swap</button>
  <label>Right <select id="right">@OPTIONS@</select></label>
  <span class="group" role="group" aria-label="Zoom">
    <button type="button" data-zoom="0" aria-pressed="true" aria-label="Zoom to fit">Fit</button>
    <button type="button" data-zoom="1" aria-pressed="false"
      aria-label="Zoom 1:1, one image pixel per CSS pixel">1:1</button>
    <button type="button" data-zoom="4" aria-pressed="false" aria-label="Zoom 4x, pixels as squares">4x</button>
  </span>
  <button type="button" id="layout" aria-pressed="false">Side by side</button>
  @REGION@
</div>
<div id="stage">
<div id="viewer" tabindex="0" role="group" aria-label="Comparison view" aria-describedby="help">
  <div class="pane" id="pane-left"><img alt=""><div class="marks"></div><div class="tag"></div></div>
  <div class="pane" id="pane-right"><img alt=""><div class="marks"></div><div class="tag"></div></div>
  <div id="divider" aria-hidden="true"></div>
</div>
<label class="split">Split <input type="range" id="split" min="0" max="100" step="1" value="50"></label>
</div>
<p id="help">Drag the picture or press the arrow keys to pan (Shift: faster), + and &minus; to zoom, drag the
white line or the Split slider to move the split; at Fit, click a place to zoom in on it.</p>
<div class="table-wrap"><table id="stats">
<thead><tr><th scope="col">codec</th><th scope="col">setting</th><th scope="col">bytes</th><th scope="col">bpp</th>
<th scope="col">PSNR dB</th><th scope="col">MS-SSIM</th><th scope="col">encode s</th><th scope="col">decode s</th>
<th scope="col">shown</th></tr></thead>
<tbody>@ROWS@</tbody></table></div>
<div class="notes">@NOTES@</div>
</main>
<div id="store" hidden>@IMAGES@</div>
<script type="application/json" id="page-data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""


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
    fill = {"TITLE": html.escape(title), "CSS": CSS, "SUMMARY": html.escape(summary), "OPTIONS": options,
            "REGION": region, "ROWS": "".join(_row(c, width * height) for c in coded),
            "NOTES": "".join(f"<p>{html.escape(n)}</p>" for n in notes), "IMAGES": store,
            "DATA": json.dumps(data).replace("<", "\\u003c"), "SCRIPT": SCRIPT}
    return re.sub(r"@([A-Z]+)@", lambda m: fill[m.group(1)], PAGE)  # one pass: no value is read again


def _where(key: str, regions) -> str:
    part = key.rsplit("-", 1)[1]
    if part == "fit":
        return "whole image, downscaled"
    b = regions[int(part)]
    return f"region {int(part) + 1} ({b.w}x{b.h} at x {b.x}, y {b.y})" if len(regions) > 1 else "whole image"
