"""Regenerate benchmarks/compare-split.png and benchmarks/compare-zoom.png: the page of
`aecompress compare samples/kodim23.png` (default quality) in headless Chromium.

    python benchmarks/compare_screenshots.py [OUT_DIR]      # default: benchmarks/

compare-split.png: aecompress | JPEG in the split view at Fit, with the table below.
compare-zoom.png: aecompress | AVIF at 4x on the left macaw's eye.
Needs Debian's chromium and chromium-driver and selenium (see tests/browser.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import browser  # noqa: E402

EYE = (205, 235)  # image pixel the zoom is centred on
WIDTH = 1200


def main(out: Path) -> None:
    why = browser.missing()
    if why:
        sys.exit(f"compare_screenshots: {why}")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "kodim23-compare.html"
        subprocess.run([sys.executable, "-m", "aecompress", "compare", str(ROOT / "samples" / "kodim23.png"),
                        "-o", str(page)], check=True)
        with browser.chromium(WIDTH, 900) as d:
            d.get(page.as_uri())
            for _ in range(3):  # the whole page: a taller window makes the viewer taller, up to its width's share
                frame = d.get_window_size()["height"] - d.execute_script("return window.innerHeight")
                d.set_window_size(WIDTH, d.execute_script("return document.documentElement.scrollHeight") + frame)
            d.save_screenshot(str(out / "compare-split.png"))
            d.set_window_size(WIDTH, 900)
            d.find_element("id", "right").send_keys("AVIF")
            zoom_on(d, *EYE)
            d.save_screenshot(str(out / "compare-zoom.png"))
    print(f"wrote {out / 'compare-split.png'} and {out / 'compare-zoom.png'}")


def zoom_on(d, x: float, y: float) -> None:
    """Click image pixel (x, y) at Fit: the page zooms in on it (to 4x where the whole image fits at 1:1)."""
    from selenium.webdriver.common.action_chains import ActionChains

    viewer = d.find_element("id", "viewer")
    box = d.execute_script("const b = document.querySelector('#pane-right img').getBoundingClientRect();"
                           "const v = document.getElementById('viewer').getBoundingClientRect();"
                           "return [b.left - v.left - v.width / 2, b.top - v.top - v.height / 2];")
    s = float(viewer.get_attribute("data-scale"))
    ActionChains(d).move_to_element_with_offset(viewer, int(box[0] + x * s), int(box[1] + y * s)).click().perform()
    if viewer.get_attribute("data-zoom") != "4":
        d.find_element("css selector", "button[data-zoom='4']").click()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "benchmarks")
