"""`aecompress compare`: the page's numbers, then the page itself in headless Chromium (see
browser.py: without Chromium these tests fail, unless AECOMPRESS_SKIP_BROWSER=1 skips them)."""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, features

from aecompress import compare, report, zoo
from aecompress.cli import main

import browser

KODIM23 = os.path.join(os.path.dirname(__file__), "..", "samples", "kodim23.png")


def kodim23_crop(w: int, h: int) -> Image.Image:
    """A crop of the macaws' heads: feathers, an eye and smooth background."""
    return Image.open(KODIM23).convert("RGB").crop((300, 100, 300 + w, 100 + h))


@pytest.fixture(scope="module")
def model() -> zoo.CodingModel:
    return zoo.load()


@pytest.fixture(scope="module")
def small(model, tmp_path_factory):
    """A 256x192 page: the whole image at every zoom (MS-SSIM needs 161 pixels a side)."""
    page = compare.build(kodim23_crop(256, 192), "crop.png", 1000, model)
    path = tmp_path_factory.mktemp("small") / "compare.html"
    path.write_text(page.html)
    return page, path


@pytest.fixture(scope="module")
def large(model, tmp_path_factory):
    """A page laid out as for a large photo: a 64-pixel preview at Fit, four 32x32 regions at 1:1."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compare, "LARGE", 5000)
        mp.setattr(compare, "PREVIEW", 64)
        mp.setattr(compare, "CROP", 32)
        page = compare.build(kodim23_crop(128, 96), "big.png", 1000, model)
    path = tmp_path_factory.mktemp("large") / "compare.html"
    path.write_text(page.html)
    return page, path


@pytest.fixture(scope="module")
def driver():
    why = browser.missing()
    if why:
        if os.environ.get(browser.SKIP_VARIABLE) == "1":
            pytest.skip(why)
        pytest.fail(why)
    with browser.chromium(1280, 900) as d:
        yield d


def open_page(driver, path, size=(1280, 900)):
    driver.set_window_size(*size)
    driver.get(path.as_uri())
    return driver


def js(driver, script: str, *args):
    return driver.execute_script(script, *args)


def state(driver) -> dict:
    return js(driver, "return Object.assign({}, document.getElementById('viewer').dataset)")


def keys(driver, *sequence):
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*sequence).perform()


def shown_transforms(driver) -> list[str]:
    return js(driver, "return [...document.querySelectorAll('.pane img')].map(i => i.style.transform)")


def test_each_codec_is_at_its_highest_quality_that_fits(small):
    page, _ = small
    ours = page.coded[0]
    assert ours.key == "aecompress"
    expected = ["jpeg"] + [k for k in ("webp", "avif") if features.check(k)]
    assert [c.key for c in page.coded[1:]] == expected
    image = kodim23_crop(256, 192)
    for c, spec in zip(page.coded[1:], compare.pillow_codecs()):
        q = int(c.setting.split()[1])
        assert c.nbytes <= ours.nbytes and c.fits
        if q < spec.hi:
            assert len(spec.encode(image, q + 1)) > ours.nbytes
        assert 20 < c.psnr < 60 and 0.5 < c.ms_ssim <= 1


def test_highest_fitting_bisects_to_the_last_quality_that_fits():
    sizes = {q: 10 * q for q in range(1, 101)}
    assert compare.highest_fitting(lambda q: b"x" * sizes[q], 1, 100, 455) == (45, b"x" * 450)
    assert compare.highest_fitting(lambda q: b"x" * sizes[q], 1, 100, 5)[0] == 1  # none fits: the lowest


def test_regions_are_detailed_distinct_and_inside_the_image():
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[::2, 200:300] = 255  # stripes: the one detailed place
    boxes = compare.detail_regions(rgb, 64, 3)
    assert boxes[0].x >= 200 - 64 and boxes[0].x + 64 <= 300 + 64
    for a in boxes:
        assert 0 <= a.x <= 400 - 64 and 0 <= a.y <= 300 - 64
        for b in boxes:
            assert a is b or abs(a.x - b.x) >= 64 or abs(a.y - b.y) >= 64
    panorama = compare.detail_regions(np.zeros((40, 3000, 3), np.uint8), 512, 4)
    assert all(b.h == 40 and b.y == 0 for b in panorama)


def test_page_is_self_contained(small):
    html = small[0].html
    assert not re.search(r"https?://|<link|@import|url\(", html)
    sources = re.findall(r'src="([^"]*)"', html)
    assert len(sources) == len(small[0].coded) + 1  # one per codec and the original
    assert all(s.startswith("data:image/png;base64,") for s in sources)


def test_every_image_decodes_at_its_size(driver, small):
    open_page(driver, small[1])
    images = js(driver, "return [...document.images].map(i => [i.id, i.complete, i.naturalWidth, i.naturalHeight,"
                        " Number(i.dataset.w || 0), Number(i.dataset.h || 0)])")
    assert len(images) == 2 + len(small[0].coded) + 1  # the two shown, one stored per codec and the original
    for name, complete, w, h, want_w, want_h in images:
        assert complete and w > 0, name
        assert (w, h) == ((want_w, want_h) if name else (256, 192)), name
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert js(driver, "return performance.getEntriesByType('resource').filter(e => !e.name.startsWith('data:'))"
                      ".map(e => e.name)") == []


def test_split_slider_and_divider_move_the_split(driver, small):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, small[1])
    driver.find_element(By.ID, "split").click()  # the middle: 50
    keys(driver, *[Keys.ARROW_LEFT] * 10)
    assert float(state(driver)["split"]) == pytest.approx(40, abs=1.01)
    clip = js(driver, "return getComputedStyle(document.getElementById('pane-left')).clipPath")
    assert re.search(r"inset\(0(px)? 6\d(\.\d+)?% 0(px)? 0(px)?\)", clip), clip
    before = float(state(driver)["split"])
    divider = driver.find_element(By.ID, "divider")
    ActionChains(driver).click_and_hold(divider).move_by_offset(150, 0).release().perform()
    assert float(state(driver)["split"]) > before + 10
    assert state(driver)["zoom"] == "0"  # moving the split is no pan or zoom


def test_zoom_buttons_and_keys_pan_both_sides_together(driver, small):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, small[1])
    driver.find_element(By.CSS_SELECTOR, "button[data-zoom='4']").click()
    s = state(driver)
    assert (s["zoom"], float(s["scale"])) == ("4", 4.0)
    rendering = "return [...document.querySelectorAll('.pane img')].map(i => getComputedStyle(i).imageRendering)"
    assert js(driver, rendering) == ["pixelated", "pixelated"]
    assert driver.find_element(By.CSS_SELECTOR, "button[data-zoom='4']").get_attribute("aria-pressed") == "true"
    viewer = driver.find_element(By.ID, "viewer")
    ActionChains(driver).move_to_element(viewer).click().perform()  # focus (a click at 4x does not zoom)
    cx, cy = float(state(driver)["cx"]), float(state(driver)["cy"])
    keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_DOWN)
    s = state(driver)
    assert float(s["cx"]) > cx and float(s["cy"]) > cy
    a, b = shown_transforms(driver)
    assert a == b and "scale(4)" in a
    cx = float(s["cx"])
    ActionChains(driver).move_to_element_with_offset(viewer, -200, 0).click_and_hold().move_by_offset(40, 0) \
        .release().perform()  # away from the divider in the middle; drag right: see more to the left
    assert float(state(driver)["cx"]) == pytest.approx(cx - 10, abs=1)
    keys(driver, "-")
    assert state(driver)["zoom"] == "1"
    keys(driver, "-")
    assert state(driver)["zoom"] == "0" and float(state(driver)["scale"]) < 4
    keys(driver, "+", "+")
    assert state(driver)["zoom"] == "4"


def test_choosing_and_swapping_codecs(driver, small):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(driver, small[1])
    assert (state(driver)["left"], state(driver)["right"]) == ("aecompress", "jpeg")
    Select(driver.find_element(By.ID, "left")).select_by_value("original")
    Select(driver.find_element(By.ID, "right")).select_by_value("webp")
    same = "return document.querySelector('#pane-left img').src === document.getElementById('img-original-0').src"
    assert js(driver, same)
    driver.find_element(By.ID, "swap").click()
    assert (state(driver)["left"], state(driver)["right"]) == ("webp", "original")
    rows = js(driver, "return [...document.querySelectorAll('#stats tbody tr')].map(r => [r.dataset.key,"
                      " r.querySelector('.where').textContent])")
    assert dict(rows)["webp"] == "left" and dict(rows)["original"] == "right" and dict(rows)["jpeg"] == ""


def test_side_by_side_views_pan_in_step(driver, small):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(driver, small[1])
    driver.find_element(By.ID, "layout").click()
    driver.find_element(By.CSS_SELECTOR, "button[data-zoom='4']").click()
    keys(driver, Keys.ARROW_LEFT, Keys.ARROW_UP)  # focus stays on the button: the keys still pan
    s = state(driver)
    assert s["layout"] == "side-by-side" and float(s["cx"]) < 128
    left, right = js(driver, "return ['pane-left', 'pane-right'].map(id => document.getElementById(id)"
                             ".getBoundingClientRect().toJSON())")
    assert left["right"] <= right["left"] and left["width"] == pytest.approx(right["width"], abs=1)
    a, b = shown_transforms(driver)
    assert a == b
    assert js(driver, "return document.getElementById('pane-left').style.clipPath") == "none"


def test_tab_order_reaches_every_control(driver, small):
    from selenium.webdriver.common.keys import Keys

    open_page(driver, small[1])
    js(driver, "document.activeElement.blur()")
    seen = []
    for _ in range(9):
        keys(driver, Keys.TAB)
        seen.append(js(driver, "const e = document.activeElement; return e.id || e.textContent.trim()"))
    assert seen == ["left", "swap", "right", "Fit", "1:1", "4x", "layout", "viewer", "split"]


def test_phone_sized_window_needs_no_sideways_scrolling(driver, small):
    open_page(driver, small[1], (390, 844))
    page_w, view_w, viewer_w = js(driver, "return [document.documentElement.scrollWidth, window.innerWidth,"
                                          " document.getElementById('viewer').getBoundingClientRect().width]")
    assert page_w <= view_w and 300 <= viewer_w <= view_w


def test_large_image_shows_a_preview_at_fit_and_regions_at_full_size(driver, large):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page, path = large
    assert page.preview == (64, 48) and len(page.regions) == 4
    assert all(c.ms_ssim is None for c in page.coded)  # 96 pixels a side: MS-SSIM n/a
    open_page(driver, path)
    natural = ("return [...document.querySelectorAll('.pane img')]"
               ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert js(driver, natural) == [[True, 64, 48]] * 2
    assert js(driver, "return document.querySelectorAll('#pane-right .mark').length") == 4
    sizes = js(driver, "return [...document.querySelectorAll('#store img')]"
                       ".map(i => [i.naturalWidth, i.naturalHeight])")
    assert sorted(map(tuple, sizes)) == sorted([(32, 32)] * 4 * 5 + [(64, 48)] * 5)
    driver.find_element(By.CSS_SELECTOR, "button[data-zoom='1']").click()
    assert js(driver, natural) == [[True, 32, 32]] * 2
    Select(driver.find_element(By.ID, "region")).select_by_value("2")
    assert state(driver)["region"] == "2"
    driver.find_element(By.CSS_SELECTOR, "button[data-zoom='0']").click()
    mark = driver.find_elements(By.CSS_SELECTOR, "#pane-right .mark")[3]
    ActionChains(driver).move_to_element(mark).click().perform()  # a click at Fit: zoom in on that region
    assert (state(driver)["zoom"], state(driver)["region"]) == ("4", "3")  # 4x: at 1:1 it fits the pane


def test_compare_command_writes_the_page(tmp_path):
    source = tmp_path / "crop.png"
    kodim23_crop(128, 96).save(source)
    runner = CliRunner()
    done = runner.invoke(main, ["compare", str(source), "--size", "2000"])
    assert done.exit_code == 0, done.output
    page = (tmp_path / "crop-compare.html").read_text()
    assert "aecompress compare: crop.png" in page and "jpeg q" in done.output
    again = runner.invoke(main, ["compare", str(source)])
    assert again.exit_code == 1 and "exists" in again.output
    both = runner.invoke(main, ["compare", str(source), "-q", "50", "--bpp", "1", "-f"])
    assert both.exit_code == 2 and "give one of them" in both.output


def test_bench_report_links_pages_at_two_rates(model, tmp_path):
    data = tmp_path / "kodak"
    data.mkdir()
    kodim23_crop(128, 96).save(data / "kodim23.png")
    entry = compare.bench_pages(model, data, ["kodim23.png"], tmp_path / "out", rates=(1.0, 2.0))
    assert [p["file"] for p in entry["pages"]] == ["compare/kodim23-1bpp.html", "compare/kodim23-2bpp.html"]
    for p in entry["pages"]:
        assert (tmp_path / "out" / p["file"]).stat().st_size == p["page_bytes"]
        assert p["codecs"]["aecompress"]["bytes"] * 8 / (128 * 96) <= p["bpp"]
    links = report.compare_links(SimpleNamespace(extras={"compare": entry}))
    assert "[1 bpp](compare/kodim23-1bpp.html)" in links and "[2 bpp](compare/kodim23-2bpp.html)" in links
