"""The committed reports are what their one command writes from the committed JSON."""

from pathlib import Path

from aecompress import plot, report

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
README = BENCHMARKS.parent / "README.md"


def test_kodak_report_and_readme_section_equal_what_the_json_gives(monkeypatch):
    """`python -m aecompress.plot benchmarks` redraws report.md and README's section from
    benchmarks/results/kodak: nothing in them was typed in by hand."""
    monkeypatch.chdir(README.parent)  # the report names its results folder as the command does
    r = plot.load(Path("benchmarks"), Path("benchmarks/results/kodak"))
    figures = {"rd": "rd.png", "rd_msssim": "rd-msssim.png", "crops": "crops.png"}
    assert report.markdown(r, figures) == (BENCHMARKS / "report.md").read_text()
    section = report.readme_section(r, Path("benchmarks"))
    assert section in README.read_text()
