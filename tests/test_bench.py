"""The benchmark measures what it claims: real file sizes, sound metrics, a report from its JSON."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecompress import bench, codec, headline, metrics, plot, report, sparsity, zoo
from aecompress.cli import main

from conftest import TINY_MODEL as MODEL
from conftest import smooth_image

SCHEMA = ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Two small images, two qualities, aecompress (tiny model) + JPEG + WebP, report drawn."""
    root = tmp_path_factory.mktemp("bench")
    data = root / "set"
    data.mkdir()
    for i, (h, w) in enumerate(((176, 192), (192, 200))):
        Image.fromarray(smooth_image(h, w, seed=i)).save(data / f"img{i}.png")
    summary = bench.run(data, root / "out", MODEL, (30, 80), codecs=["aecompress", "jpeg", "webp"],
                        repeats=1, keep_files=root / "files", extras=False)
    return root, summary


def test_results_follow_compressai_columnar_schema(smoke):
    root, summary = smoke
    assert set(summary.codecs) == {"aecompress", "jpeg", "webp"}
    for name in summary.codecs:
        d = json.loads((summary.results_dir / f"{name}.json").read_text())
        assert d["name"] == name and d["description"]
        n = len(d["results"]["quality"])
        assert n >= 2
        for key in SCHEMA:
            assert len(d["results"][key]) == n and all(np.isfinite(d["results"][key]))


def test_bpp_is_file_bytes_times_8_over_pixels(smoke):
    root, summary = smoke
    for name, ext in (("aecompress", "aec"), ("jpeg", "jpg"), ("webp", "webp")):
        d = json.loads((summary.results_dir / f"{name}.json").read_text())
        for i, q in enumerate(d["results"]["quality"]):
            sizes = [(root / "files" / name / f"{img.rsplit('.', 1)[0]}@{q:g}.{ext}").stat().st_size
                     for img in d["images"]]
            assert sizes == d["per_image"]["bytes"][i]
            bpp = np.mean([s * 8 / p for s, p in zip(sizes, d["pixels"])])
            assert d["results"]["bpp"][i] == pytest.approx(bpp, rel=1e-12)


def test_aecompress_files_decode_to_the_measured_psnr(smoke):
    root, summary = smoke
    d = json.loads((summary.results_dir / "aecompress.json").read_text())
    model = zoo.load(MODEL)
    original = np.asarray(Image.open(root / "set" / d["images"][0]).convert("RGB"))
    data = (root / "files" / "aecompress" / f"img0@{d['results']['quality'][0]:g}.aec").read_bytes()
    back = np.asarray(codec.decode(data, model=model))
    assert metrics.psnr(original, back) == pytest.approx(d["per_image"]["psnr-rgb"][0][0])


def test_report_is_drawn_from_the_json(smoke):
    root, summary = smoke
    text = summary.report.read_text()
    assert "BD-rate" in text and "| jpeg |" in text and "Speed" in text
    for figure in ("rd.png", "rd-msssim.png"):
        assert Image.open(root / "out" / figure).size[0] > 100


def test_bd_rate_of_a_codec_against_itself_is_zero():
    bpp, psnr = [0.2, 0.4, 0.8, 1.6], [27.0, 30.5, 33.8, 37.2]
    assert metrics.bd_rate(bpp, psnr, bpp, psnr) == pytest.approx(0, abs=1e-9)
    assert metrics.bd_rate(bpp, psnr, [b / 2 for b in bpp], psnr) == pytest.approx(-50)
    assert metrics.bd_rate(bpp, psnr, bpp, [p + 20 for p in psnr]) is None  # no overlap: no number
    assert metrics.bpp_at_psnr(bpp, psnr, 30.5) == pytest.approx(0.4)


def test_ahead_of_jpeg_finds_where_the_curves_cross():
    """JPEG gains 3 dB per doubling of the rate; ours leads by 1.5 dB at 0.25 bpp, 0.5 dB less per
    doubling, so in log-bpp the curves cross halfway between 1 and 2 bpp, at sqrt(2)."""
    bpp = [0.25, 0.5, 1.0, 2.0]
    jpeg = {"results": {"bpp": bpp, "psnr-rgb": [26.0, 29.0, 32.0, 35.0]}}
    ours = {"results": {"bpp": bpp[::-1], "psnr-rgb": [34.5, 32.5, 30.0, 27.5]}}  # any order
    r = plot.Results("set", {"aecompress": ours, "jpeg": jpeg}, {}, {}, Path("."))
    [(start, end)] = report.ahead_of_jpeg(r)
    assert start == pytest.approx(0.25) and end == pytest.approx(2**0.5, rel=1e-3)
    assert "0.250-1.414 bpp" in report.ahead_of_jpeg_sentence(r)
    behind = {"results": {"bpp": bpp, "psnr-rgb": [25.0, 28.0, 31.0, 34.0]}}
    r = plot.Results("set", {"aecompress": behind, "jpeg": jpeg}, {}, {}, Path("."))
    assert report.ahead_of_jpeg(r) == [] and "at nowhere" not in report.ahead_of_jpeg_sentence(r)


def test_redraw_finds_the_bench_results_beside_other_result_folders(smoke, tmp_path):
    root, _ = smoke
    (root / "out" / "results" / "denoise").mkdir(exist_ok=True)  # written by another benchmark
    assert plot._only_results(root / "out") == root / "out" / "results" / "set"
    with pytest.raises(ValueError, match="expected one result set, found 0"):
        plot._only_results(tmp_path)


def test_ms_ssim_of_identical_images_is_one():
    a = smooth_image(176, 200)
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 8, a.shape), 0, 255).astype(np.uint8)
    assert 0.5 < metrics.ms_ssim(a, noisy) < 1.0
    with pytest.raises(ValueError):
        metrics.ms_ssim(a[:100], a[:100])  # too small for 5 scales


def test_sparsity_counts_the_zero_symbols(golden_model):
    data = codec.encode(smooth_image(64, 96), 50, model=golden_model)
    s = sparsity.sparsity_of(data, golden_model)
    _, _, lat = codec.read(data, golden_model)
    assert s.zero_share == pytest.approx((lat.y_symbols == 0).mean())
    assert s.channels == golden_model.config.M and 0 <= s.channels_99 <= s.channels


def test_bench_rejects_a_missing_folder(tmp_path):
    r = CliRunner().invoke(main, ["bench", str(tmp_path / "none"), "--model", MODEL, "--out", str(tmp_path)])
    assert r.exit_code == 1 and "not a folder of images" in r.output


def test_committed_readme_figures_are_those_of_the_committed_json():
    """README's generated section and the weights manifest hold what benchmarks/results says."""
    root = Path(__file__).resolve().parent.parent
    r = plot.load(root / "benchmarks", root / "benchmarks" / "results" / "kodak")
    section = headline.readme_section(r, Path("benchmarks"))
    assert section in (root / "README.md").read_text()
    ours = r.codecs["aecompress"]["results"]
    entry = zoo.entry(r.extras["run"]["model"])
    assert entry["kodak"]["bpp"] == [round(v, 4) for v in ours["bpp"]]  # as the manifest rounds them
    assert entry["kodak"]["psnr_rgb"] == [round(v, 3) for v in ours["psnr-rgb"]]
