"""Writes the golden files in tests/golden/. Run once, by hand, when the format changes on
purpose (and bump container.VERSION): test_golden.py checks that they keep decoding."""

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import codec, zoo
from conftest import GOLDEN, smooth_image, tiny_context_model_file, tiny_model_file


def symbols_digest(latents: codec.Latents) -> str:
    h = hashlib.sha256()
    for a in (latents.z_hat, latents.y_symbols, latents.index, latents.mean_int):
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return h.hexdigest()


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    plain = zoo.load_file(tiny_model_file(GOLDEN / "tiny.pt"))
    with_context = zoo.load_file(tiny_context_model_file(GOLDEN / "tiny-context.pt"))
    with_groups = zoo.load_file(tiny_context_model_file(GOLDEN / "tiny-context-groups.pt", seed=1, slices=3))
    cases = {
        "rgb_65x257_q30.aec": (Image.fromarray(smooth_image(65, 257, seed=3)), 30, plain),
        "rgb_96x80_q90.aec": (Image.fromarray(smooth_image(96, 80, seed=4)), 90, plain),
        "rgba_33x17_q55.aec": (Image.fromarray(smooth_image(33, 17, seed=5)).convert("RGBA"), 55, plain),
        "context_rgb_70x90_q60.aec": (Image.fromarray(smooth_image(70, 90, seed=6)), 60, with_context),
        "groups_rgb_75x81_q45.aec": (Image.fromarray(smooth_image(75, 81, seed=7)), 45, with_groups),
    }
    expected = {}
    for name, (image, quality, model) in cases.items():
        data = codec.encode(image, quality, model=model)
        Path(GOLDEN / name).write_bytes(data)
        _, _, latents = codec.read(data, model=model)
        expected[name] = symbols_digest(latents)
    (GOLDEN / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
