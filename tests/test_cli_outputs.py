"""Outputs as users expect them: the usual permissions, the format the name asks for, inputs
never overwritten, `encode in.png out.aec`, and every output checked before any work."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecompress.cli import main

from conftest import TINY_MODEL as MODEL
from conftest import smooth_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def aec(png):
    assert run("encode", png, "--model", MODEL).exit_code == 0
    return png.with_suffix(".aec")


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_0666_less_the_umask_not_the_temporary_files_0600(png, tmp_path, umask):
    out = tmp_path / "x.aec"
    subprocess.run([sys.executable, "-m", "aecompress", "encode", str(png), "-o", str(out), "--model", MODEL],
                   check=True, capture_output=True, preexec_fn=lambda: os.umask(umask))
    assert _mode(out) == 0o666 & ~umask
    out.chmod(0o600)  # a file overwritten with -f keeps the mode it had
    assert run("encode", png, "-o", out, "-f", "--model", MODEL).exit_code == 0
    assert _mode(out) == 0o600


def test_decoded_format_follows_the_extension(aec, tmp_path):
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".avif", "AVIF"), (".gif", "GIF"),
                     (".tif", "TIFF"), (".bmp", "BMP")):
        out = tmp_path / f"back{ext}"
        r = run("decode", aec, "-o", out, "--model", MODEL)
        assert r.exit_code == 0, r.output
        with Image.open(out) as image:
            assert image.format == fmt and image.size == (80, 48)


def test_unknown_extension_is_a_one_line_usage_error_before_any_work(tmp_path):
    missing = tmp_path / "missing.aec"  # reading it would fail: the name is refused first
    r = run("decode", missing, "-o", tmp_path / "out.xyz")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert r.output.startswith("aecompress: error:") and "'.xyz'" in r.output and "PNG" in r.output
    assert run("decode", missing, "-o", tmp_path / "noext").exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_decode_quality_sets_lossy_outputs_and_is_refused_for_lossless(aec, tmp_path):
    sizes = {}
    for q in (20, 95):
        r = run("decode", aec, "-o", tmp_path / f"q{q}.jpg", "-q", q, "--model", MODEL)
        assert r.exit_code == 0, r.output
        sizes[q] = (tmp_path / f"q{q}.jpg").stat().st_size
    assert sizes[20] < sizes[95]
    r = run("decode", aec, "-o", tmp_path / "x.png", "-q", 50, "--model", MODEL)
    assert r.exit_code == 2 and "not of PNG" in r.output and not (tmp_path / "x.png").exists()


def test_alpha_dropped_by_a_format_without_it_is_a_notice(tmp_path):
    rgba = np.dstack([smooth_image(24, 40), np.full((24, 40), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert run("encode", tmp_path / "a.png", "--model", MODEL).exit_code == 0
    r = run("decode", tmp_path / "a.aec", "-o", tmp_path / "a.jpg", "--model", MODEL)
    assert r.exit_code == 0 and "transparency dropped" in r.stderr
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


def test_the_input_is_never_overwritten_even_with_force(png, aec, tmp_path):
    original = png.read_bytes()
    (tmp_path / "link.png").symlink_to(png)
    os.link(png, tmp_path / "hard.png")
    for src, dst in ((png, png), (tmp_path / "link.png", png), (png, tmp_path / "link.png"),
                     (png, tmp_path / "hard.png")):
        r = run("encode", src, "-o", dst, "-f", "--model", MODEL)
        assert r.exit_code == 1 and r.output.count("\n") == 1 and "is an input" in r.output
    assert png.read_bytes() == original
    odd = tmp_path / "odd.png"  # an .aec file by another name
    odd.write_bytes(aec.read_bytes())
    r = run("decode", odd, "-o", odd, "-f", "--model", MODEL)
    assert r.exit_code == 1 and "is an input" in r.output and odd.read_bytes() == aec.read_bytes()


def test_a_second_positional_output_name_is_the_output(png, tmp_path):
    r = run("encode", png, tmp_path / "out.aec", "--model", MODEL)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.aec").read_bytes()[:4] == b"\x8aAEC" and not png.with_suffix(".aec").exists()
    r = run("decode", tmp_path / "out.aec", tmp_path / "back.webp", "--model", MODEL)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "back.webp").format == "WEBP"
    other = tmp_path / "other.png"
    Image.fromarray(smooth_image(20, 30)).save(other)
    r = run("encode", png, other, "--model", MODEL)  # two images stay two inputs
    assert r.exit_code == 0 and png.with_suffix(".aec").exists() and other.with_suffix(".aec").exists()


def test_outputs_are_checked_before_any_work_and_errors_name_them(png, tmp_path):
    nowhere = "no-such-model"  # loading it would fail: each output check comes first
    for out, message in ((tmp_path / "missing" / "x.aec", "folder"), ("/sys/x.aec", "cannot write /sys/x.aec")):
        r = run("encode", png, "-o", out, "--model", nowhere)
        assert r.exit_code == 1 and r.output.count("\n") == 1 and message in r.output, r.output
        assert str(out) in r.output and ".tmp" not in r.output
    second = tmp_path / "second.png"
    Image.fromarray(smooth_image(20, 30)).save(second)
    second.with_suffix(".aec").write_bytes(b"keep me")
    r = run("encode", png, second, "--model", MODEL)
    assert r.exit_code == 1 and "second.aec exists" in r.output
    assert not png.with_suffix(".aec").exists()  # the first input was not coded either
    png.with_suffix(".jpg").write_bytes(png.read_bytes())
    r = run("encode", png, png.with_suffix(".jpg"), "-d", tmp_path / "out", "--model", MODEL)
    assert r.exit_code == 2 and "would both be written to" in r.output


def test_write_errors_name_the_path_not_the_temporary_file():
    from aecompress.image import write_atomic

    with pytest.raises(OSError) as e:
        write_atomic(Path("/sys/x.aec"), b"data", force=False)  # sysfs takes no new files, even from root
    assert "/sys/x.aec" in str(e.value) and ".tmp" not in str(e.value)


def test_bench_writes_committed_results_only_when_asked(tmp_path, monkeypatch):
    import tempfile

    from aecompress import headline

    root = tmp_path / "repo"
    (root / "set").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    readme = f"intro\n{headline.START}\nold\n{headline.END}\n"
    (root / "README.md").write_text(readme)
    for i in range(2):
        Image.fromarray(smooth_image(176, 192, seed=i)).save(root / "set" / f"img{i}.png")
    monkeypatch.chdir(root)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = run("bench", "set", "--quick", "--codecs", "jpeg", "--model", MODEL)
    assert r.exit_code == 0, r.output
    assert (root / "README.md").read_text() == readme and list((root / "benchmarks").iterdir()) == []
    fresh = [p for p in tmp_path.iterdir() if p.name.startswith("aecompress-bench-")]
    assert len(fresh) == 1 and (fresh[0] / "report.md").exists() and str(fresh[0]) in r.output
    r = run("bench", "set", "--quick", "--codecs", "jpeg", "--model", MODEL, "--out", "benchmarks")
    assert r.exit_code == 0, r.output  # what benchmarks/run_kodak.sh runs
    assert (root / "benchmarks" / "report.md").exists() and (root / "README.md").read_text() != readme
