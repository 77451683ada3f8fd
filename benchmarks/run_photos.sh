#!/usr/bin/env bash
# A second photo set, never trained or tuned on: the RGB photographs scikit-image ships
# (astronaut, chelsea, coffee, motorcycle_left, rocket), coded by aecompress and the Pillow codecs
# in one run -> benchmarks/photos/ (results JSON, plots, report.md; README's section is Kodak's).
#   bash benchmarks/run_photos.sh [--model NAME] [--threads 2]
# Redraw plots and report from the existing JSON only: python -m aecompress.plot benchmarks/photos
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
dir=$(mktemp -d)/skimage-photos
trap 'rm -rf "$(dirname "$dir")"' EXIT
python - "$dir" <<'PY'
import os, sys
from PIL import Image
import skimage.data

os.makedirs(sys.argv[1])
shipped = os.path.dirname(skimage.data.__file__)
for name in ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"):  # RGB photos
    Image.open(os.path.join(shipped, name)).convert("RGB").save(os.path.join(sys.argv[1], name.split(".")[0] + ".png"))
PY
exec aecompress bench "$dir" --out benchmarks/photos --codecs aecompress,jpeg,jpeg444,webp,avif,jpeg2000 "$@"
