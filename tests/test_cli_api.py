"""The Python API and start-up: encode/decode take what users hold (paths, bytes, files), and
`--help`, `info` and `import aecompress` import no torch."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import aecompress

from conftest import TINY_MODEL as MODEL


def test_encode_takes_an_image_an_array_a_path_bytes_or_a_file(png):
    reference = aecompress.encode(Image.open(png), 70, model=MODEL)
    with open(png, "rb") as f:
        sources = [np.asarray(Image.open(png)), str(png), png, png.read_bytes(), f]
        assert all(aecompress.encode(s, 70, model=MODEL) == reference for s in sources)
    assert aecompress.encode(png, model=MODEL) == aecompress.encode(png, 60, model=MODEL)  # the default
    with pytest.raises(TypeError, match="binary mode"), open(png) as text:
        aecompress.encode(text, model=MODEL)


def test_decode_takes_bytes_a_path_or_a_file(png, tmp_path):
    data = aecompress.encode(png, 70, model=MODEL)
    (tmp_path / "x.aec").write_bytes(data)
    reference = np.asarray(aecompress.decode(data, model=MODEL))
    assert reference.shape == (48, 80, 3)
    sources = [bytearray(data), str(tmp_path / "x.aec"), tmp_path / "x.aec", io.BytesIO(data)]
    assert all(np.array_equal(np.asarray(aecompress.decode(s, model=MODEL)), reference) for s in sources)
    with pytest.raises(aecompress.DecodeError):
        aecompress.decode(b"\x8aAEC" + bytes(40))
    with pytest.raises(TypeError):
        aecompress.decode(12)


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_help_info_and_import_do_not_import_torch(png, tmp_path):
    (tmp_path / "x.aec").write_bytes(aecompress.encode(png, model=MODEL))
    proc = _python(f"""
import sys
from click.testing import CliRunner
from aecompress.cli import main
for args in (["--help"], ["encode", "--help"], ["decode", "--help"], ["info", {str(tmp_path / "x.aec")!r}]):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
assert "tiny-test" in r.output
from PIL import Image
assert Image.open({str(tmp_path / "x.aec")!r}).size == (80, 48)  # the header only
heavy = [m for m in ("torch", "constriction", "aecompress.codec") if m in sys.modules]
assert not heavy, heavy
""")
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "aecompress", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "torch" not in proc.stderr


def test_pillow_plugin_saves_and_opens_aec_files(png, tmp_path):
    proc = _python(f"""
import aecompress
from PIL import Image
Image.open({str(png)!r}).save({str(tmp_path / "y.aec")!r}, quality=70, model={MODEL!r})
""")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "y.aec").read_bytes() == aecompress.encode(png, 70, model=MODEL)
    with Image.open(tmp_path / "y.aec") as image:
        assert image.format == "AEC" and image.size == (80, 48)
