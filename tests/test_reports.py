"""The committed reports are what their one command writes from the committed JSON."""

import importlib.util
import json
from pathlib import Path

from aecompress import headline, plot, report

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
README = BENCHMARKS.parent / "README.md"


def script(name: str):
    """A script of benchmarks/ as a module (the folder is no package); importing it runs nothing."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kodak_report_and_readme_section_equal_what_the_json_gives(monkeypatch):
    """`python -m aecompress.plot benchmarks` redraws report.md and README's section from
    benchmarks/results/kodak: nothing in them was typed in by hand."""
    monkeypatch.chdir(README.parent)  # the report names its results folder as the command does
    r = plot.load(Path("benchmarks"), Path("benchmarks/results/kodak"))
    figures = {"rd": "rd.png", "rd_msssim": "rd-msssim.png", "crops": "crops.png"}
    assert report.markdown(r, figures) == (BENCHMARKS / "report.md").read_text()
    section = headline.readme_section(r, Path("benchmarks"))
    assert section in README.read_text()


def test_photos_report_equals_what_the_json_gives(monkeypatch):
    """`python -m aecompress.plot benchmarks/photos` redraws photos/report.md and README's section
    on the set from benchmarks/photos/results/skimage-photos."""
    monkeypatch.chdir(README.parent)
    r = plot.load(Path("benchmarks/photos"), Path("benchmarks/photos/results/skimage-photos"))
    figures = {"rd": "rd.png", "rd_msssim": "rd-msssim.png", "crops": "crops.png"}
    assert report.markdown(r, figures) == (BENCHMARKS / "photos" / "report.md").read_text()
    assert headline.set_section(r, Path("benchmarks/photos")) in README.read_text()


def test_denoise_report_and_readme_section_equal_what_the_json_gives():
    """`python benchmarks/denoise_kodak.py --render` rewrites denoise.md and README's denoise section
    from benchmarks/results/denoise/*.json."""
    denoise = script("denoise_kodak")
    results = denoise.load(BENCHMARKS)
    assert denoise.report(results, "denoise.png") == (BENCHMARKS / "denoise.md").read_text()
    assert denoise.readme_section(results, "benchmarks") in README.read_text()


def test_efficiency_report_equals_what_the_json_gives():
    """`python benchmarks/efficiency_study.py --render` rewrites efficiency.md from
    benchmarks/results/efficiency.json."""
    record = json.loads((BENCHMARKS / "results" / "efficiency.json").read_text())
    assert script("efficiency_study").markdown(record) == (BENCHMARKS / "efficiency.md").read_text()


def test_lineage_equals_what_the_manifest_gives():
    """`python benchmarks/lineage.py` rewrites lineage.md from weights/manifest.json."""
    manifest = json.loads((README.parent / "weights" / "manifest.json").read_text())
    assert script("lineage").markdown(manifest) == (BENCHMARKS / "lineage.md").read_text()


def test_training_curves_equal_what_their_records_give():
    """`python benchmarks/training_curve.py --render` rewrites every training/NAME.md from
    NAME.jsonl (the run's evaluations) and NAME.json (its config, note and step offset)."""
    curve = script("training_curve")
    pages = sorted((BENCHMARKS / "training").glob("*.md"))
    assert pages and {p.stem for p in pages} == {p.stem for p in (BENCHMARKS / "training").glob("*.jsonl")}
    for page in pages:
        assert curve.markdown(page.stem, *curve.load(page.stem)) == page.read_text(), page.name


def test_train_speed_report_equals_what_the_json_gives():
    """`python benchmarks/train_speed.py --render` rewrites train_speed.md from
    benchmarks/results/train_speed.json."""
    record = json.loads((BENCHMARKS / "results" / "train_speed.json").read_text())
    assert script("train_speed").markdown(record) == (BENCHMARKS / "train_speed.md").read_text()


def test_startup_report_equals_what_the_json_gives():
    """`python benchmarks/startup.py` rewrites startup.md from benchmarks/results/startup.json."""
    record = json.loads((BENCHMARKS / "results" / "startup.json").read_text())
    assert script("startup").markdown(record) == (BENCHMARKS / "startup.md").read_text()
