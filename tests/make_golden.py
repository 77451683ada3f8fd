"""Writes the golden files in tests/golden/ that are not there yet. Run by hand when the format
grows on purpose (and bump container.VERSION when old readers cannot follow): files already
there are kept, with their models, since they stand for what earlier versions wrote, and
test_determinism.py checks that they keep decoding."""

import hashlib
import json

import numpy as np
from PIL import Image

from aecompress import codec, zoo

from conftest import GOLDEN, smooth_image, tiny_context_model_file, tiny_model_file


def symbols_digest(latents: codec.Latents) -> str:
    h = hashlib.sha256()
    for a in (latents.z_hat, latents.y_symbols, latents.index, latents.mean_int):
        h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
    return h.hexdigest()


def soft_alpha(h: int, w: int) -> np.ndarray:
    """A cut-out's alpha: opaque inside an ellipse, transparent outside, a soft edge between."""
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (0.4 * h), (xx - w / 2) / (0.4 * w))
    return np.clip((1.15 - r) * 900, 0, 255).astype(np.uint8)


def model(name: str, make, **options) -> zoo.CodingModel:
    """A golden model file, written only if missing."""
    path = GOLDEN / name
    return zoo.load_file(path if path.exists() else make(path, **options))


def main() -> None:
    GOLDEN.mkdir(exist_ok=True)
    plain = model("tiny.pt", tiny_model_file)
    with_context = model("tiny-context.pt", tiny_context_model_file)
    with_groups = model("tiny-context-groups.pt", tiny_context_model_file, seed=1, slices=3)
    with_other_groups = model("tiny-context-nonanchor.pt", tiny_context_model_file, seed=2, slices=2,
                              non_anchor_slices=4)
    with_window = model("tiny-context-window.pt", tiny_context_model_file, seed=3, slices=2, non_anchor_slices=2,
                        window=5)
    cases = {
        "rgb_65x257_q30.aec": (Image.fromarray(smooth_image(65, 257, seed=3)), 30, plain),
        "rgb_96x80_q90.aec": (Image.fromarray(smooth_image(96, 80, seed=4)), 90, plain),
        "rgba_33x17_q55.aec": (Image.fromarray(smooth_image(33, 17, seed=5)).convert("RGBA"), 55, plain),
        "context_rgb_70x90_q60.aec": (Image.fromarray(smooth_image(70, 90, seed=6)), 60, with_context),
        "groups_rgb_75x81_q45.aec": (Image.fromarray(smooth_image(75, 81, seed=7)), 45, with_groups),
        "nonanchor_rgb_83x70_q50.aec": (Image.fromarray(smooth_image(83, 70, seed=8)), 50, with_other_groups),
        "window_rgb_77x66_q55.aec": (Image.fromarray(smooth_image(77, 66, seed=9)), 55, with_window),
        "alpha2_47x29_q40.aec": (Image.fromarray(np.dstack([smooth_image(47, 29, seed=10), soft_alpha(47, 29)])),
                                 40, plain),
    }
    listed = GOLDEN / "expected.json"
    expected = json.loads(listed.read_text()) if listed.exists() else {}
    for name, (image, quality, coding_model) in cases.items():
        if (GOLDEN / name).exists():
            continue
        data = codec.encode(image, quality, model=coding_model)
        (GOLDEN / name).write_bytes(data)
        _, _, latents = codec.read(data, model=coding_model)
        expected[name] = symbols_digest(latents)
    listed.write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
