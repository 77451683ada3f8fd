"""What an installed wheel relies on: where weights are found, and one-line errors for what is missing.
(.ci/run builds the wheel itself and codes a sample with it from a fresh venv.)"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aecompress
from aecompress import container, extras, zoo

from conftest import GOLDEN, smooth_image

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_the_manifests_default_model():
    tomllib = pytest.importorskip("tomllib")
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    m = json.loads((REPO / "weights" / "manifest.json").read_text())
    default = next(e["file"] for e in m["models"] if e["name"] == m["default"])
    assert sorted(shipped["aecompress.weights"]) == sorted(["manifest.json", default])


def test_the_wheel_carries_every_file_of_the_comparison_page():
    tomllib = pytest.importorskip("tomllib")
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    page = [p.name for p in (REPO / "aecompress").glob("compare_page.*") if p.suffix != ".py"]
    assert page and sorted(shipped["aecompress"]) == sorted(page)


def test_weights_are_found_through_the_package_or_the_environment(tmp_path):
    assert zoo.WEIGHTS_DIR == REPO / "weights"  # an editable install maps aecompress.weights onto weights/
    code = "from aecompress import zoo; print(zoo.WEIGHTS_DIR)"
    env = {"AECOMPRESS_WEIGHTS": str(tmp_path), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == tmp_path


def test_a_listed_model_without_its_file_names_it_and_where_it_goes(tmp_path, monkeypatch):
    shutil.copy(REPO / "weights" / "manifest.json", tmp_path / "manifest.json")
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    zoo.load.cache_clear()
    default = zoo.default_model_name()
    file = zoo.entry(default)["file"]
    with pytest.raises(zoo.ModelNotFound, match=rf"'{default}' is listed.*{file}.*AECOMPRESS_WEIGHTS"):
        zoo.load(default)
    zoo.load.cache_clear()


def test_a_renamed_model_writes_its_new_name_and_decodes_files_with_its_old_one(tmp_path, monkeypatch):
    """A manifest entry's aliases are earlier names of the same weights file: files that carry
    one still decode, and new files carry the (shorter) name."""
    weights = shutil.copy(GOLDEN / "tiny.pt", tmp_path / "tiny.pt")
    old_name = zoo.load_file(weights).name
    sha = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    manifest = {"default": "t-1", "models": [{"name": "t-1", "aliases": [old_name], "file": "tiny.pt",
                                              "sha256": sha, "bytes": Path(weights).stat().st_size}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    pixels = smooth_image(40, 56)
    made_before = aecompress.encode(pixels, 50, model=zoo.load_file(weights))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    zoo.load.cache_clear()
    try:
        made_now = aecompress.encode(pixels, 50)
        assert container.unpack(made_before).header.model == old_name
        assert container.unpack(made_now).header.model == "t-1"
        assert len(made_before) - len(made_now) == len(old_name) - len("t-1")  # the same payload
        assert np.array_equal(np.asarray(aecompress.decode(made_before)), np.asarray(aecompress.decode(made_now)))
        zoo.register(Path(weights), sha, weights_dir=tmp_path)  # re-registering the file keeps name and aliases
        assert zoo.manifest(tmp_path)["models"] == [{**manifest["models"][0], "metadata": {}}]
    finally:
        zoo.load.cache_clear()


def test_a_retired_model_names_its_successor_and_where_its_weights_are():
    retired = [e for e in zoo.manifest()["models"] if e.get("retired")]
    assert retired and all(not (zoo.WEIGHTS_DIR / e["file"]).exists() for e in retired)
    names = {e["name"] for e in zoo.manifest()["models"]}
    for e in retired:
        assert e["retired"]["replaced_by"] in names and "config" in e
        with pytest.raises(zoo.ModelNotFound, match=rf"'{e['name']}' was retired \(replaced by .*git show "
                                                    rf"{e['retired']['commit']}:weights/{e['file']}"):
            zoo.load(e["name"])


def test_a_missing_optional_dependency_names_its_extra():
    with pytest.raises(extras.MissingExtra, match=r"pip install 'aecompress\[bench\]'") as e:
        extras.require("no_such_module_here", "bench", "this")
    assert isinstance(e.value, ImportError) and isinstance(e.value, LookupError)  # LookupError: one line in the CLI
