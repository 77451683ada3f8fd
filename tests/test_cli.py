"""The command line as users run it: one line per file, one-line errors, nothing half-written."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from aecompress.cli import main

from conftest import TINY_MODEL as MODEL
from conftest import smooth_image


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


def test_encode_decode_info_roundtrip(png, tmp_path):
    r = run("encode", png, "--model", MODEL, "-q", 80, "--verify")
    assert r.exit_code == 0, r.output
    assert "bpp" in r.output and "PSNR" in r.output
    aec = png.with_suffix(".aec")
    assert aec.exists()
    r = run("decode", aec, "-o", tmp_path / "out.png", "--model", MODEL)
    assert r.exit_code == 0, r.output
    assert Image.open(tmp_path / "out.png").size == (80, 48)
    r = run("info", aec, "--json")
    fields = json.loads(r.output)
    assert fields["width"] == 80 and fields["quality"] == 80 and fields["model"] == "tiny-test"


def test_existing_output_is_not_overwritten_without_force(png):
    aec = png.with_suffix(".aec")
    aec.write_bytes(b"keep me")
    r = run("encode", png, "--model", MODEL)
    assert r.exit_code == 1 and "exists" in r.output
    assert aec.read_bytes() == b"keep me"
    assert run("encode", png, "--model", MODEL, "-f").exit_code == 0
    assert aec.read_bytes() != b"keep me"


def test_stdin_to_stdout(png):
    r = CliRunner().invoke(main, ["encode", "-", "-o", "-", "--model", MODEL], input=png.read_bytes())
    assert r.exit_code == 0
    assert r.stdout_bytes[:4] == b"\x8aAEC"


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x8aAEC" + bytes(40)])
def test_bad_input_gives_one_line_error_and_no_output(tmp_path, content):
    bad = tmp_path / "bad.aec"
    bad.write_bytes(content)
    out = tmp_path / "out.png"
    proc = subprocess.run([sys.executable, "-m", "aecompress", "decode", str(bad), "-o", str(out),
                           "--model", MODEL], capture_output=True, text=True)
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("aecompress: error:")
    assert not out.exists()
    assert bad.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["bad.aec"]


def test_weights_from_a_newer_version_give_one_line_error(png, tmp_path):
    import torch

    blob = torch.load(MODEL, map_location="cpu", weights_only=True)
    blob["config"]["setting_of_a_later_version"] = 2
    newer = tmp_path / "newer.pt"
    torch.save(blob, newer)
    proc = subprocess.run([sys.executable, "-m", "aecompress", "encode", str(png), "-o", str(tmp_path / "x.aec"),
                           "--model", str(newer)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "setting_of_a_later_version" in proc.stderr
    assert "a newer version wrote it" in proc.stderr
    assert not (tmp_path / "x.aec").exists()


def test_missing_file_and_directory_inputs(tmp_path):
    r = run("encode", tmp_path / "nope.png", "--model", MODEL)
    assert r.exit_code == 1 and r.output.startswith("aecompress: error:")
    r = run("encode", tmp_path, "--model", MODEL)
    assert r.exit_code == 1 and "directory" in r.output


def test_decoded_png_matches_python_api(png, tmp_path):
    from aecompress import codec, zoo

    model = zoo.load_file(MODEL)
    data = codec.encode(Image.open(png), 60, model=model)
    (tmp_path / "a.aec").write_bytes(data)
    assert run("decode", tmp_path / "a.aec", "--model", MODEL).exit_code == 0
    cli = np.asarray(Image.open(tmp_path / "a.png"))
    api = np.asarray(codec.decode(data, model=model))
    assert np.array_equal(cli, api)


def test_many_files_into_a_folder_with_metadata_kept(tmp_path):
    srcs = []
    for i in range(3):
        img = Image.fromarray(smooth_image(20 + i, 30))
        exif = Image.Exif()
        exif[0x010E] = f"picture {i}"  # ImageDescription
        path = tmp_path / f"p{i}.jpg"
        img.save(path, quality=95, exif=exif, icc_profile=b"fake-icc-profile-bytes")
        srcs.append(path)
    out = tmp_path / "out"
    r = run("encode", *srcs, "-d", out, "--model", MODEL, "-j", 2)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["p0.aec", "p1.aec", "p2.aec"]
    r = run("decode", *sorted(out.iterdir()), "-d", tmp_path / "back", "--model", MODEL)
    assert r.exit_code == 0, r.output
    back = Image.open(tmp_path / "back" / "p1.png")
    assert back.info.get("icc_profile") == b"fake-icc-profile-bytes"
    assert back.getexif()[0x010E] == "picture 1"
    r = run("encode", srcs[0], "-o", tmp_path / "s.aec", "--strip", "--model", MODEL)
    from aecompress import container
    assert container.ICC not in container.unpack((tmp_path / "s.aec").read_bytes()).sections


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(smooth_image(20, 40))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert run("encode", tmp_path / "r.jpg", "--model", MODEL).exit_code == 0
    from aecompress import container
    h = container.unpack((tmp_path / "r.aec").read_bytes()).header
    assert (h.width, h.height) == (20, 40)


def test_declared_size_beyond_limit_is_refused(png, tmp_path):
    r = run("encode", png, "--model", MODEL, "--max-pixels", 100)
    assert r.exit_code == 1 and "exceeds" in r.output
    assert not png.with_suffix(".aec").exists()


def _png_16bit_rgb(path, h, w):
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16).astype(">u2")
    raw = b"".join(b"\0" + rows[y].tobytes() for y in range(h))

    def chunk(tag, body):
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["16bit-rgb", "16bit-gray", "palette", "cmyk", "gif", "1x1", "panorama",
                                  "webp", "bmp", "tiff", "jpeg"])
def test_input_kinds_encode_and_decode(tmp_path, kind):
    path = tmp_path / "in.png"
    rgb = smooth_image(24, 40)
    if kind == "16bit-rgb":
        _png_16bit_rgb(path, 24, 40)
    elif kind == "16bit-gray":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(path)
    elif kind == "palette":
        Image.fromarray(rgb).quantize(16).save(path)
    elif kind == "cmyk":
        path = tmp_path / "in.tif"
        Image.fromarray(rgb).convert("CMYK").save(path)
    elif kind == "gif":
        path = tmp_path / "in.gif"
        frames = [Image.fromarray(smooth_image(24, 40, seed=i)).quantize(32) for i in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif kind in ("webp", "bmp", "tiff", "jpeg"):
        path = tmp_path / f"in.{kind}"
        Image.fromarray(rgb).save(path)
    elif kind == "1x1":
        Image.fromarray(rgb[:1, :1]).save(path)
    else:
        Image.fromarray(np.tile(rgb, (1, 60, 1))[:16]).save(path)  # 16 x 2400
    r = run("encode", path, "-o", tmp_path / "x.aec", "--model", MODEL)
    assert r.exit_code == 0, r.output
    if kind in ("16bit-rgb", "16bit-gray"):
        assert "16-bit samples reduced to 8 bits" in r.output
    if kind == "gif":
        assert "encoding the first" in r.output
    r = run("decode", tmp_path / "x.aec", "-o", tmp_path / "x.png", "--model", MODEL)
    assert r.exit_code == 0, r.output
    out = Image.open(tmp_path / "x.png")
    assert out.size == Image.open(path).size
    assert out.mode == ("L" if kind == "16bit-gray" else "RGB")


def test_unwritable_output_folder_is_one_line_error(png, tmp_path):
    r = run("encode", png, "-o", tmp_path / "missing" / "x.aec", "--model", MODEL)
    assert r.exit_code == 1 and r.output.count("\n") == 1 and r.output.startswith("aecompress: error:")
