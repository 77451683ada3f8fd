"""A model's settings (stored in its weights file, read without torch) and the quality axis."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_QUALITY = 60  # the shipped model gives 33-35 dB on Kodak here (benchmarks/report.md)


@dataclass(frozen=True)
class ModelConfig:
    N: int = 96  # channels of z and of the hyper transforms (and of g_a and g_s unless `width` is set)
    M: int = 128  # channels of y
    levels: int = 64  # Gaussian tables (scale levels)
    anchors: int = 8  # learned gain vectors, spread evenly over quality 1..100
    lambda_min: float = 0.0018  # rate-distortion trade-off at quality 1 ...
    lambda_max: float = 0.18  # ... and at quality 100 (MSE on 0..1 pixels, x 255**2)
    denoise: bool = False  # g_a conditioned on the input's noise level (encode --denoise)
    simplified_gdn: bool = False  # |x| instead of sqrt(x^2) in (I)GDN
    width: int | None = None  # channels of g_a and g_s; None: N
    analysis_width: int | None = None  # channels of g_a alone (a wider encoder, the same decoder); None: width
    context: int = 0  # hidden channels of the checkerboard context model (context.py); 0: none
    context_slices: int = 1  # channel groups of the anchors, each refined by those before it
    non_anchor_slices: int = 1  # channel groups of the other positions, likewise
    context_window: int = 3  # side of the window the other positions read the anchors in: 3 or 5
    quality_conditioned: bool = False  # g_a conditioned on the quality (FiLM per gain anchor)

    @property
    def transform_width(self) -> int:
        """Channels of g_s (and of g_a unless `analysis_width` is set)."""
        return self.width or self.N

    @property
    def analysis_channels(self) -> int:
        return self.analysis_width or self.transform_width

    def to_dict(self) -> dict:
        return asdict(self)


def quality_to_t(quality: float) -> float:
    """-q 1..100 onto [0, 1], the position along the trained lambda range."""
    return (min(max(float(quality), 1.0), 100.0) - 1.0) / 99.0
