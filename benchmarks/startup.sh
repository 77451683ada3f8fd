#!/usr/bin/env bash
# Start-up and small-image times of the `aecompress` on PATH (say, a fresh install of the wheel),
# rate control included:
# hyperfine, 10 runs after one warm-up -> benchmarks/results/startup.json -> benchmarks/startup.md.
# Needs hyperfine (apt-get install -y hyperfine). The table again from the JSON alone:
# python benchmarks/startup.py
set -euo pipefail
cd "$(dirname "$0")/.."
render=$PWD/benchmarks/startup.py
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp samples/kodim23.png "$tmp"
cd "$tmp"
aecompress encode kodim23.png -o kodim23.aec 2>/dev/null
hyperfine --runs 10 --warmup 1 --export-json times.json \
    'aecompress --help' \
    'aecompress info kodim23.aec' \
    'aecompress decode kodim23.aec -o out.png -f' \
    'aecompress encode kodim23.png -o x.aec -f' \
    'aecompress encode kodim23.png -o x.aec -f --target-size 30000' \
    'aecompress encode kodim23.png -o x.aec -f --target-psnr 33.3'
python3 "$render" --hyperfine times.json --version "$(hyperfine --version)" --cores "$(nproc)" --runs 10 --warmup 1
