"""Runs as users read them: unreachable targets fail, -q never silently ignored, many files
with a summary, --quiet, each notice once, consistent exit codes, progress on long work."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecompress import files
from aecompress.cli import main

from conftest import TINY_MODEL as MODEL
from conftest import smooth_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture()
def pngs(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"p{i}.png")
        Image.fromarray(smooth_image(40 + 8 * i, 64, seed=i)).save(paths[-1])
    return paths


@pytest.mark.parametrize("option, value, nearest", [("--target-size", 10, "the smallest file is"),
                                                    ("--target-bpp", 0.001, "the smallest file is"),
                                                    ("--target-psnr", 90, "the highest is")])
def test_unreachable_target_fails_naming_the_nearest_reachable(pngs, option, value, nearest):
    r = run("encode", pngs[0], option, value, "--model", MODEL)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "out of reach" in r.output and nearest in r.output and "quality" in r.output
    assert not pngs[0].with_suffix(".aec").exists()


def test_quality_next_to_a_target_is_a_usage_error(pngs):
    r = run("encode", pngs[0], "-q", 70, "--target-size", 5000, "--model", MODEL)
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "-q and --target-size" in r.output
    assert not pngs[0].with_suffix(".aec").exists()


def test_info_takes_many_files(pngs):
    assert run("encode", *pngs, "--model", MODEL).exit_code == 0
    aecs = [p.with_suffix(".aec") for p in pngs]
    r = run("info", *aecs)
    assert r.exit_code == 0 and [line.split(":")[0] for line in r.stdout.splitlines()] == [str(a) for a in aecs]
    r = run("info", *aecs, "--json")
    assert [json.loads(line)["height"] for line in r.stdout.splitlines()] == [40, 48, 56]
    r = run("info", aecs[0], pngs[0], aecs[1])  # a bad file fails alone, on its own line
    assert r.exit_code == 1 and r.stdout.count("\n") == 2 and "not an .aec file" in r.stderr


def test_quiet_prints_errors_only(pngs, tmp_path):
    r = run("encode", *pngs, "-Q", "--model", MODEL)
    assert r.exit_code == 0 and r.output == ""
    aec = pngs[0].with_suffix(".aec")
    assert run("decode", aec, "-o", tmp_path / "x.png", "--quiet", "--model", MODEL).output == ""
    r = run("info", "-Q", aec, pngs[0])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and r.output.startswith("aecompress: error:")


def test_a_batch_ends_with_a_summary_of_bytes_in_and_out(pngs, tmp_path):
    r = run("encode", *pngs, "-d", tmp_path / "out", "--model", MODEL)
    assert r.exit_code == 0, r.output
    bytes_in = sum(p.stat().st_size for p in pngs)
    bytes_out = sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"3 files, 3 done: {bytes_in} bytes in, {bytes_out} bytes out (") and last.endswith(" s")
    (tmp_path / "bad.png").write_bytes(b"nope")
    r = run("encode", pngs[0], tmp_path / "bad.png", "-d", tmp_path / "more", "--model", MODEL)
    assert r.exit_code == 1 and "2 files, 1 done, 1 failed: " in r.stderr


def test_16bit_notice_prints_once_even_with_verify(tmp_path):
    path = tmp_path / "g16.png"
    Image.fromarray(smooth_image(24, 40)[..., 0].astype(np.uint16) * 257).save(path)
    r = run("encode", path, "--verify", "--model", MODEL)
    assert r.exit_code == 0 and r.stderr.count("16-bit samples reduced to 8 bits") == 1


def test_exit_status_is_1_for_files_2_for_usage_and_documented(pngs, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert run("encode", tmp_path / "bad.png", "--model", MODEL).exit_code == 1
    assert run("encode", tmp_path / "none.png", "--model", MODEL).exit_code == 1
    assert run("decode", tmp_path / "bad.png", "-o", tmp_path / "x.png", "--model", MODEL).exit_code == 1
    assert run("encode", pngs[0], "-e", 9).exit_code == 2  # click's own usage error
    assert run("encode", pngs[0], "--target-bpp", -1).exit_code == 2
    assert run("encode", pngs[0], "--denoise", "-e", 1).exit_code == 2
    assert run("encode", pngs[0], "--denoise", 20, "--target-psnr", 30).exit_code == 2
    assert run("encode", *pngs[:2], "-o", tmp_path / "x.aec").exit_code == 2
    assert run("decode", tmp_path / "bad.aec", "-o", tmp_path / "x.pdf").exit_code == 2
    for command in ([], ["encode"], ["decode"], ["info"]):
        assert "Exit status: 0" in run(*command, "--help").output


def test_long_work_on_one_file_shows_a_spinner_on_a_terminal(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.fromarray(np.tile(smooth_image(256, 256), (2, 2, 1))).save(path)
    monkeypatch.setattr(files, "PROGRESS_AFTER_S", 0.0)
    assert run("encode", path, "--model", MODEL).stderr == ""  # not a terminal: nothing
    monkeypatch.setattr(files, "_is_terminal", lambda stream: True)
    r = run("encode", path, "-f", "--model", MODEL)
    assert r.exit_code == 0 and f"\rencoding {path} | 0 s" in r.stderr and r.stderr.endswith("\r\033[K")
    assert "bpp" in r.stdout
    assert run("encode", path, "-f", "-Q", "--model", MODEL).stderr == ""
