#!/usr/bin/env bash
# Start-up and small-image times of the `aecompress` on PATH (say, a fresh install of the wheel):
# hyperfine, 10 runs after one warm-up -> benchmarks/startup.md. Needs hyperfine
# (apt-get install -y hyperfine).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$PWD/benchmarks/startup.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp samples/kodim23.png "$tmp"
cd "$tmp"
aecompress encode kodim23.png -o kodim23.aec 2>/dev/null
hyperfine --runs 10 --warmup 1 --export-json times.json \
    'aecompress --help' \
    'aecompress info kodim23.aec' \
    'aecompress decode kodim23.aec -o out.png -f' \
    'aecompress encode kodim23.png -o x.aec -f'
# hyperfine's own --export-markdown has no median: the table is written from its JSON.
python3 - times.json "$out" "$(hyperfine --version)" "$(nproc)" <<'PY'
import json, sys
times, out, version, cores = sys.argv[1:]
lines = [f"Written by `benchmarks/startup.sh` ({version}, 10 runs after one warm-up, {cores} CPU cores); "
         "kodim23 is 768x512. Seconds.", "",
         "| command | median | mean ± σ | min | max |", "|---|---|---|---|---|"]
for r in json.load(open(times))["results"]:
    lines.append(f"| `{r['command']}` | {r['median']:.3f} | {r['mean']:.3f} ± {r['stddev']:.3f} "
                 f"| {r['min']:.3f} | {r['max']:.3f} |")
open(out, "w").write("\n".join(lines) + "\n")
PY
cat "$out"
