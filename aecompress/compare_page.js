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
