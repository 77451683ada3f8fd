"""Rate control: the quality that meets a target size, bitrate or PSNR.

The file is `codec.encode` at the quality found, so the search ends with g_a run for exactly
that quality (the shipped model's g_a takes the quality: its y changes with it), and g_a is
most of an encode. So g_a runs three times in most cases, and everything else is estimated:

1. g_a at mid quality. Its latents, gained for other qualities, give a curve of the real one's
   shape, only flatter (the real latents change with the quality too): scaled by a typical
   factor, it puts the answer within about a quality. One more point of that curve, besides
   the run's own, is all the estimate costs.
2. g_a at that estimate. Near and between two runs, latents interpolated between them (linearly
   in log quality: they change faster at low qualities than at high ones) follow the real ones
   closely: one more point of their curve, next to the run, solves for the target.
3. g_a at the answer, a small margin inside: the latents of the file. If the curve through the
   runs puts a quality more than CLOSE better within reach (or this one misses), g_a runs again.

Estimated sizes are the two streams' ideal code lengths under the integer tables, with the
integer networks run in float32 (twice as fast; an odd table differs), aimed at the budget less
the rest of the file (header, alpha, metadata: the same at every quality) as the nearest run
shows their bias. Where g_a ran, the streams are coded for real: a file that fits is known to.
PSNR is measured with g_s. A model whose y ignores the quality runs g_a once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from . import codec, metrics, zoo
from .config import quality_to_t

START = 50.0  # the first run's quality
MARGIN = 0.04  # the file's quality is this much inside the estimate, so that it fits
CLOSE = 0.1  # the file's quality is within this much of the best one
RETRIES = 4  # g_a runs after the first, at most
# Typical slopes near mid quality on photos: log size rises about this much per quality, PSNR
# this many dB. Only the first step uses them; afterwards the curves give their own.
LOG_SIZE_PER_QUALITY = 0.045
DB_PER_QUALITY = 0.15
# The real curves rise faster than those of one run's latents gained for other qualities, by
# about these factors for the shipped model (log size: 1.03..1.25 over photos, PSNR: 1.04..1.28).
STEEPER = {"size": 1.1, "psnr": 1.12}
# The flattest slope a secant step takes, as a share of the typical one: on a small image code
# lengths can stall for a quality; PSNR flattens near the top (about 0.02 dB per quality at 80).
FLATTEST = {"size": 1 / 3, "psnr": 1 / 8}
REFINE = 0.1  # secant steps stop when they move by no more than this
# Values of the first run's curve the first estimate takes (each PSNR costs a g_s), and of the
# curve through the runs each later estimate takes.
FIRST_EVALS = {"size": 1, "psnr": 2}
LATER_EVALS = {"size": 1, "psnr": 0}


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
        self.m, self.source, self.noise, self.device = m, source, noise, device
        self.transforms = codec.transforms_for(m, device)
        self.y: dict[float, np.ndarray] = {}  # quality -> g_a's latents, before the gain
        self.exact: dict[tuple, object] = {}  # what holds where g_a ran: the file's latents, size, PSNR
        self.estimates: dict[tuple, object] = {}  # elsewhere, from the runs so far
        self._container: int | None = None

    def run(self, q: float) -> None:
        if not self.m.config.quality_conditioned and self.y:
            return  # y does not depend on the quality: one run serves all
        if q not in self.y:
            ran = set(self.y)  # estimates at these stand: they read the run's own latents
            self.y[q] = codec.analysis(self.m, self.source.rgb, q, self.device, self.noise)
            self.estimates = {key: v for key, v in self.estimates.items() if key[1] in ran}

    def _y_at(self, q: float) -> np.ndarray:
        if q in self.y or len(self.y) == 1:
            return self.y.get(q, next(iter(self.y.values())))
        (q0, y0), (q1, y1) = sorted(self.y.items(), key=lambda kv: abs(kv[0] - q))[:2]
        return y0 + math.log(q / q0) / math.log(q1 / q0) * (y1 - y0)

    def _store(self, q: float, exact: bool) -> dict:
        """Where what is known at q lives: with the file's latents, or with the estimates."""
        return self.exact if exact or ("latents", q) in self.exact else self.estimates

    def latents(self, q: float, exact: bool = False) -> codec.Latents:
        """The integer latents at q. `exact`: the file's, where g_a ran for q. Otherwise those
        once at hand, else an estimate: the integer networks in float32, on latents
        interpolated between the runs nearest q."""
        store = self._store(q, exact)
        if ("latents", q) not in store:
            scaled = self._y_at(q) * self.transforms.gain(quality_to_t(q))[:, None, None]
            estimate = store is not self.exact
            store["latents", q] = codec.quantize_scaled(self.m, scaled, self.transforms, estimate=estimate)
        return store["latents", q]

    def log_streams(self, q: float) -> float:
        """The log of the streams' estimated size at q (their ideal code lengths)."""
        store = self._store(q, False)
        if ("log_streams", q) not in store:
            store["log_streams", q] = math.log(codec.estimated_stream_bytes(self.m, self.latents(q)))
        return store["log_streams", q]

    def coded_streams(self, q: float, exact: bool = False) -> int:
        """The streams' size at q, coded. `exact`: as latents'."""
        store = self._store(q, exact)
        if ("coded_streams", q) not in store:
            store["coded_streams", q] = sum(map(len, codec.encode_latents(self.m, self.latents(q, exact))))
        return store["coded_streams", q]

    def container(self) -> int:
        """The bytes of the file besides its two streams (alpha, ICC, EXIF, the header): the same
        at every quality."""
        if self._container is None:
            q = next(iter(self.y))
            whole = len(codec.write(self.m, self.source, self.latents(q), q, self.noise))
            self._container = whole - self.coded_streams(q)
        return self._container

    def psnr(self, q: float, exact: bool = False) -> float:
        """g_s's PSNR at q: of the file where g_a ran for q (`exact`), else of the latents there."""
        store = self._store(q, exact)
        if ("psnr", q) not in store:
            h, w = self.source.rgb.shape[:2]
            pixels = codec.synthesize(self.m, self.latents(q, exact), q, w, h, self.device)
            store["psnr", q] = metrics.psnr(self.source.rgb, pixels)
        return store["psnr", q]


def _clip(q: float) -> float:
    return round(min(max(q, 1.0), 100.0), 2)


def _solve(f: Callable[[float], float], goal: float, q: float, slope: float, bounds: tuple[float, float],
           evals: int) -> tuple[float, float]:
    """Where the rising f meets the goal: secant steps from q, through at most `evals` more
    values of f, until a step is no longer than REFINE. The estimate, and the slope there.
    Over a third of a quality or less the code lengths move in jumps, so shorter steps keep
    the slope they had; longer ones measure it, kept within `bounds`."""
    fq = f(q)
    for i in range(evals + 1):
        nxt = _clip(q + (goal - fq) / slope)
        if i == evals or abs(nxt - q) <= REFINE:
            break
        fn = f(nxt)
        if abs(nxt - q) >= 0.3:
            slope = min(max((fn - fq) / (nxt - q), bounds[0]), bounds[1])
        q, fq = nxt, fn
    return nxt, slope


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
    budget = math.floor(budget + 1e-6)  # whole bytes, and a bitrate made from a size gives that size back
    value: Callable[[float], float] = runs.psnr if psnr else runs.log_streams
    if psnr:
        fits, aim = lambda q: runs.psnr(q, exact=True) >= target.value, lambda q: target.value
    else:  # estimates aim at the budget as the run nearest them sees their bias
        fits = lambda q: runs.container() + runs.coded_streams(q, exact=True) <= budget
        room = lambda: math.log(max(budget - runs.container(), 1))  # the streams' share of the budget
        aim = lambda q: room() + runs.log_streams(q) - math.log(runs.coded_streams(q, exact=True))
    end, side = (100.0, 1.0) if psnr else (1.0, -1.0)  # the end that fits most, the side that fits
    kind = "psnr" if psnr else "size"
    typical, steeper = (DB_PER_QUALITY if psnr else LOG_SIZE_PER_QUALITY), STEEPER[kind]
    bounds = (typical * FLATTEST[kind], typical * 4)

    runs.run(START)
    base = value(START)
    one_run = lambda q: base + steeper * (value(q) - base)  # its latents at every quality, made steeper
    q, slope = _solve(one_run, aim(START), START, typical, bounds, FIRST_EVALS[kind])
    best = miss = None  # the best quality that fits, the nearest one past it that does not
    margin = MARGIN
    for _ in range(RETRIES):
        if miss is not None and (q - miss) * side < CLOSE:  # the answer within CLOSE of a miss:
            q = _clip(miss + side * CLOSE)  # if this fits, no quality more than CLOSE better does
        elif q not in (1.0, 100.0):  # the ends need no margin
            q = _clip(q + side * margin)
        if q in runs.y:
            break
        runs.run(q)
        if fits(q):
            best = q if best is None or (q - best) * side < 0 else best
        else:
            if len(runs.y) > 2:  # placed by the curve through two runs, which runs over here
                margin *= 2
            miss = q if miss is None or (q - miss) * side > 0 else miss
        if best is not None and miss is not None and abs(miss - best) <= CLOSE + 0.005:
            break  # no quality more than CLOSE better fits
        if q == end and best != q:
            break  # not even the end fits
        if psnr:  # each PSNR costs a g_s: the slope comes from the runs nearest q
            near = [r for r in runs.y if r != q and abs(r - q) >= 0.3]
            if near:
                r = min(near, key=lambda r: abs(r - q))
                slope = min(max((value(q) - value(r)) / (q - r), bounds[0]), bounds[1])
        q, slope = _solve(value, aim(q), q, slope, bounds, LATER_EVALS[kind])
        if best is not None and (best - q) * side <= CLOSE:
            break  # the curve puts no quality more than CLOSE better than the best within reach
    while best is None and q != end:  # rare: plain steps towards the end that fits most
        q = _clip(q + 10 * side * MARGIN)
        runs.run(q)
        best = q if fits(q) else None
    q = end if best is None else best
    runs.run(q)
    data = codec.write(m, source, runs.latents(q, exact=True), q, noise)
    reached = fits(q)
    return Result(data, q, len(data) * 8 / source.pixels, runs.psnr(q, exact=True) if psnr else None, reached)
