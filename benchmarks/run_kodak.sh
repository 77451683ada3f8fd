#!/usr/bin/env bash
# Regenerates every benchmark figure: results/kodak/*.json, rd.png, rd-msssim.png, crops.png,
# report.md and README.md's generated "Benchmarks" section, from real files encoded in this run.
#   bash benchmarks/run_kodak.sh                      # shipped default model, all 24 Kodak images
#   bash benchmarks/run_kodak.sh --model NAME --threads 2
#   bash benchmarks/run_kodak.sh --threads 2 --record   # also write the figures into weights/manifest.json
# Redraw plots and report from the existing JSON only: python -m aecompress.plot benchmarks
# Optional extra: CompressAI's hyperprior timing needs `pip install --no-deps compressai`;
# without it the speed table says it was not run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec aecompress bench ../shared/data/kodak --out benchmarks "$@"
