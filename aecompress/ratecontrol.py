"""Rate control: the quality that meets a target size, bitrate or PSNR.

The file is `codec.encode` at the quality found, so the search ends with g_a run for exactly
that quality (the shipped model's g_a takes the quality: its y changes with it), and g_a is
most of an encode. So g_a runs three times, and everything else is estimated:

1. g_a at mid quality. Its latents, gained for other qualities, give a curve of the real one's
   shape but flatter (the real latents change with the quality too); scaled by a typical
   factor, it puts the answer within a few qualities.
2. g_a just past that estimate. Between and a little beyond two runs, latents interpolated
   linearly in the quality follow the real ones closely (within about 0.5% of the size): the
   code length (or g_s's PSNR) on them is solved for the target by secant steps.
3. g_a at the answer, a small margin inside: the latents of the file. One estimate next to it
   (the hyperprior's code length there, less what the context model saves at the run) checks
   that no quality more than CLOSE better fits; if one does, or this one misses, it is solved
   again and g_a runs once more.

Code lengths are the ideal ones under the integer tables, which the real coder matches within
a few bytes. A model whose y ignores the quality runs g_a once, and its estimates are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
from PIL import Image

from . import codec, metrics, zoo
from .config import quality_to_t

START = 50.0  # the first run's quality
PAST = 1.5  # the second run lands this far past the first estimate, towards the answer
MARGIN = 0.04  # the file's quality is this much inside the estimate, so that it fits
CLOSE = 0.1  # the file's quality is within this much of the best one
RETRIES = 3
# The real curves rise faster with the quality than fixed latents' (for the shipped model:
# log size 1.1..1.35 times as fast); the context model codes y in about this fraction of the
# hyperprior's bits; PSNR rises about this much per quality. Only the first estimate uses them.
STEEPER = 1.25
CONTEXT_SHARE = 0.8
DB_PER_QUALITY = 0.15


@dataclass(frozen=True)
class Target:
    kind: str  # "bpp", "size" (bytes) or "psnr" (dB)
    value: float


@dataclass(frozen=True)
class Result:
    data: bytes
    quality: float
    bpp: float
    psnr: float | None
    reached: bool  # False when the target lies outside what quality 1..100 can give


class _Runs:
    """The g_a runs of one image, and estimates at any quality from latents between them."""

    def __init__(self, m: zoo.CodingModel, source: codec.Source, noise: float, device: str):
        self.m, self.rgb, self.noise, self.device = m, source.rgb, noise, device
        self.transforms = codec.transforms_for(m, device)
        self.plain = replace(m, context=None)  # the hyperprior alone
        self.y: dict[float, np.ndarray] = {}  # quality -> g_a's latents, before the gain
        self.cache: dict[tuple, object] = {}

    def run(self, q: float) -> None:
        if not self.m.config.quality_conditioned and self.y:
            return  # y does not depend on the quality: one run serves all
        if q not in self.y:
            self.y[q] = codec.analysis(self.m, self.rgb, q, self.device, self.noise)
            self.cache.clear()

    def _y_at(self, q: float) -> np.ndarray:
        if q in self.y or len(self.y) == 1:
            return self.y.get(q, next(iter(self.y.values())))
        (q0, y0), (q1, y1) = sorted(self.y.items(), key=lambda kv: abs(kv[0] - q))[:2]
        return y0 + (q - q0) / (q1 - q0) * (y1 - y0)

    def latents(self, q: float, context: bool = True) -> codec.Latents:
        """The integer latents at q: exactly the file's where g_a ran for q."""
        key = (q, context and self.m.context is not None)
        if key not in self.cache:
            scaled = self._y_at(q) * self.transforms.gain(quality_to_t(q))[:, None, None]
            if key[1]:  # the context model corrects copies of the hyperprior's tables
                plain = self.latents(q, False)
                index, mean = plain.index.copy(), plain.mean_int.copy()
                self.cache[key] = codec.quantize_with_tables(self.m, scaled, plain.z_hat, index, mean)
            else:
                self.cache[key] = codec.quantize_scaled(self.plain, scaled, self.transforms)
        return self.cache[key]

    def log_bytes(self, q: float, context: bool = True) -> float:
        m = self.m if context else self.plain
        return math.log(codec.estimated_bytes(m, self.latents(q, context)))

    def psnr(self, q: float) -> float:
        key = ("psnr", q)
        if key not in self.cache:
            h, w = self.rgb.shape[:2]
            self.cache[key] = metrics.psnr(self.rgb, codec.synthesize(self.m, self.latents(q), q, w, h, self.device))
        return self.cache[key]


def _solve(f: Callable[[float], float], goal: float, q: float, slope: float, evals: int) -> tuple[float, float]:
    """Where the rising f meets the goal: secant steps from q (f known there; `slope` the first
    step's), `evals` more values of f. The estimate after the last value, and the slope. Steps
    shorter than a third of a quality keep the slope they had: over them, the integer code
    lengths move in jumps."""
    fq, typical = f(q), slope
    for i in range(evals + 1):
        nxt = _clip(q + (goal - fq) / slope)
        if abs(nxt - q) < 0.01 or i == evals:
            return nxt, slope
        fn = f(nxt)
        if abs(nxt - q) >= 0.3:
            slope = min(max((fn - fq) / (nxt - q), typical / 8), typical * 4)
        q, fq = nxt, fn
    return q, slope


def _clip(q: float) -> float:
    return round(min(max(q, 1.0), 100.0), 2)


def _estimate(runs: _Runs, goal: float, psnr: bool) -> tuple[float, float]:
    """The first two runs of g_a, and where the estimates put the answer (with the slope there)."""
    runs.run(START)
    if psnr:
        first = START + (goal - runs.psnr(START)) / DB_PER_QUALITY
    else:
        base, share = runs.log_bytes(START, False), math.log(CONTEXT_SHARE) if runs.m.context else 0.0
        fixed = lambda q: base + STEEPER * (runs.log_bytes(q, False) - base) + share
        first, _ = _solve(fixed, goal, START, 0.04 * STEEPER, 1)
    first = _clip(first)
    runs.run(_clip(first + math.copysign(PAST, first - START)))
    if psnr:
        return _solve(runs.psnr, goal, first, DB_PER_QUALITY, 1)
    return _solve(runs.log_bytes, goal, first, 0.04 * STEEPER, 2)


def encode_to_target(image: Image.Image | np.ndarray, target: Target,
                     model: str | zoo.CodingModel | None = None, device: str = "cpu",
                     denoise: float | str | None = None) -> Result:
    if target.value <= 0:
        raise ValueError(f"--target-{target.kind} must be positive")
    if denoise and target.kind == "psnr":
        raise ValueError("--target-psnr measures against the noisy input; use it without --denoise")
    m = codec.load_model(model)
    source = codec.prepare(image)
    noise = codec.noise_level(m, source.rgb, denoise)
    runs = _Runs(m, source, noise, device)
    psnr = target.kind == "psnr"
    budget = target.value if target.kind == "size" else target.value * source.pixels / 8
    goal = target.value if psnr else math.log(max(budget - 4, 1))  # the coder can run a few bytes over
    value = runs.psnr if psnr else runs.log_bytes
    fits = lambda q: (value(q) >= goal) if psnr else (value(q) <= goal)
    end, step = (100.0, MARGIN) if psnr else (1.0, -MARGIN)  # the end that fits most, the side that fits
    q, slope = _estimate(runs, goal, psnr)
    inside = lambda q: q if q in (1.0, 100.0) else _clip(q + step)  # the ends need no margin
    q, best = inside(q), None
    for _ in range(RETRIES):  # g_a runs for the file's quality; next to a run, estimates are close
        runs.run(q)
        if psnr:
            near = runs.psnr
        else:  # the hyperprior's code length, less what the context model saves at the run
            saved = runs.log_bytes(q) - runs.log_bytes(q, False)
            near = lambda x: runs.log_bytes(x, False) + saved
        if fits(q):
            best = q if best is None or (q - best) * step < 0 else best
            nxt, slope = _solve(near, goal, q, slope, 1)
            if abs(nxt - q) <= CLOSE or q == 101.0 - end:
                break
        elif q == end:
            break
        else:
            nxt, slope = _solve(near, goal, q, slope, 0)
        q = inside(nxt)
        if best is not None and (q - best) * step >= 0:  # no better than the best that fits
            break
    while best is None and q != end:  # rare: plain steps towards the end that fits most
        q = _clip(q + 10 * step)
        runs.run(q)
        best = q if fits(q) else None
    q = end if best is None else best
    runs.run(q)
    data = codec.write(m, source, runs.latents(q), q, noise)
    while not psnr and len(data) > budget and q > 1:  # rare: the coder ran over its estimate
        q = _clip(q - 0.05)
        runs.run(q)
        data = codec.write(m, source, runs.latents(q), q, noise)
    reached = fits(q) if psnr else len(data) <= budget
    return Result(data, q, len(data) * 8 / source.pixels, runs.psnr(q) if psnr else None, reached)
