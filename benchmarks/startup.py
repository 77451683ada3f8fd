"""Start-up and small-image times of the `aecompress` on PATH: hyperfine's figures as a table.

    bash benchmarks/startup.sh          # measures with hyperfine, then calls this script on its export
    python benchmarks/startup.py        # startup.md again from results/startup.json

With --hyperfine TIMES.json (hyperfine's --export-json) the figures the table shows are kept in
results/startup.json first; startup.md is always drawn from that file alone. hyperfine's own
--export-markdown has no median, hence this table. Standard library only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "startup.json"
FIGURES = ("median", "mean", "stddev", "min", "max")
PLAIN_ENCODE = "encode kodim23.png -o x.aec -f"


def record(times: dict, version: str, cores: int, runs: int, warmup: int) -> dict:
    """What startup.md shows of one hyperfine export: seconds per command."""
    return {"hyperfine": version, "runs": runs, "warmup": warmup, "cores": cores,
            "results": [{"command": r["command"], **{k: r[k] for k in FIGURES}} for r in times["results"]]}


def markdown(record: dict) -> str:
    warmup = "one warm-up" if record["warmup"] == 1 else f"{record['warmup']} warm-ups"
    lines = [f"Written by `benchmarks/startup.sh` ({record['hyperfine']}, {record['runs']} runs after {warmup}, "
             f"{record['cores']} CPU cores); kodim23 is 768x512. Seconds.", "",
             "| command | median | mean ± σ | min | max |", "|---|---|---|---|---|"]
    for r in record["results"]:
        lines.append(f"| `{r['command']}` | {r['median']:.3f} | {r['mean']:.3f} ± {r['stddev']:.3f} "
                     f"| {r['min']:.3f} | {r['max']:.3f} |")
    plain = next((r for r in record["results"] if r["command"].endswith(PLAIN_ENCODE)), None)
    targets = [r for r in record["results"] if "--target-" in r["command"]]
    if plain and targets:
        ratios = ", ".join(f"`{r['command'].split(PLAIN_ENCODE)[1].strip()}` {r['median'] / plain['median']:.2f}"
                           for r in targets)
        lines += ["", f"Rate control, median over the plain encode's median: {ratios}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hyperfine", type=Path, help="hyperfine's --export-json of a new measurement")
    parser.add_argument("--version", default="", help="`hyperfine --version` of that measurement")
    parser.add_argument("--cores", type=int, default=0)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    if args.hyperfine and not (args.version and args.cores):
        parser.error("--hyperfine needs --version and --cores")
    if args.hyperfine:
        times = json.loads(args.hyperfine.read_text())
        RESULTS.write_text(json.dumps(record(times, args.version, args.cores, args.runs, args.warmup), indent=1)
                           + "\n")
    (HERE / "startup.md").write_text(markdown(json.loads(RESULTS.read_text())))
    print((HERE / "startup.md").read_text(), end="")


if __name__ == "__main__":
    main()
