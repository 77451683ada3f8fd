"""Rate control: the quality that meets a target size, bitrate or PSNR.

The file is `codec.encode` at the quality found, with the latents of one run of g_a. The
shipped model's g_a takes the quality, but in steps of 5 (`codec.conditioning`): within a step
only the gain moves. So where g_a has run, the file's latents at every quality it reaches are at
hand for the price of quantizing them: its own step, and from 60 up 10 or 15 qualities (REACH:
there latents made for a step below, gained for the quality, lose nothing at equal PSNR on
average, so the file need not be the plain encode, which takes its own step's). g_a, most of an
encode, runs once or twice in most searches:

1. g_a at a start quality: for PSNR, the step where two JPEG encodes of the photo foresee
   the answer when that is below 60 (FORESIGHT); else START, mid for sizes, higher for PSNR.
   Where it reaches, its values are exact. A foreseen answer is the first try, and the
   foreseen curve's slope there sends the next. From START, its latents, gained for
   other qualities, give a curve of the real one's shape, only flatter (the real latents
   change with the quality too): scaled by the typical factor for each quality, it puts the
   answer within a quality or two. How much flatter varies between photos, and for PSNR
   less from 65 than from 50 (standard deviations 0.03 to 0.046 from 40 up, against 0.05 to
   0.064): near the top the curve is flat, and there every 0.05 of the factor moves the
   answer by several qualities, often into another step.
2. g_a for a step that reaches that estimate, if the first does not: from 60 up, the one that
   has it furthest from either end of its reach. Across its reach every value is exact, and
   secant steps on them find the best quality there to within CLOSE. An answer beyond it (an
   estimate near an end can be off by enough: how much steeper the real curve is varies
   between photos) is placed by latents interpolated between the runs (linearly in log
   quality: they change faster at low qualities than at high ones), and g_a runs there in turn.

For PSNR, secant steps go along the typical curve's shape (`_Axis`), which flattens towards
the top: there a straight line through two values falls short, and each step short of the
answer cost a run of g_a. The bottom of the best one's run, where PSNR is least in its reach,
is tried before a lower quality near it (exact, without a run), and before a best just above
it ends the search (PSNR wavers on small images: WAVER); a best that meets the target by a
hair, less than the curve rises over CLOSE, needs no miss below it (FINE); slopes are taken
within a run's reach, as PSNR jumps where the latents change; and near the top, where curves
through values a few thousandths of a dB apart go far off, a try just past the best that fits
sends the next one twice as far.

Where g_a ran, sizes are the two streams coded for real, so a file that fits is known to.
Elsewhere they are the streams' ideal code lengths under the integer tables, with the integer
networks run in float32 (twice as fast; an odd table differs), times the ratio of coded to
ideal at the nearest quality coded. PSNR is measured with g_s. A model whose y ignores the
quality runs g_a once.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from . import codec, metrics, zoo
from .config import quality_to_t

# The first run's quality. For PSNR 70, whose run reaches 85 (REACH; 65's reaches 75): on the 60
# targets of ratecontrol_counts.py (aec-18), g_a 97 -> 86 and g_s 293 -> 285 against 65; on the
# 60 held out, 104 -> 94 and 302 -> 297. From 72.5, 75 or 77.5: g_a 88, 95 and 94 on the first.
START = {"size": 50.0, "psnr": 70.0}
MARGIN = 0.04  # a quality placed by a curve goes this much inside it, so that it fits
CLOSE = 0.1  # the file's quality is within this much of the best one
RUNS = 5  # g_a runs at most
STEPS = 12  # qualities tried at most
# Typical slopes near mid quality on photos: log size rises about this much per quality, PSNR
# this many dB. Only the first step uses them; afterwards the curves give their own.
LOG_SIZE_PER_QUALITY = 0.045
DB_PER_QUALITY = 0.15
# Measured with aec-16 unless a comment names aec-18 (the default since, trained further from
# aec-16 at the same widths and steps of the quality: the targets of ratecontrol_counts.py took
# as many runs of g_a from START with either, 123 and 126 for PSNR, 124 and 123 for size).
# The real curves rise faster than those of the first run's latents gained for other qualities:
# from the first run's quality to each quality, by these factors for the shipped model. Sizes: means over 12
# training photos (the spread between photos is 0.01..0.1). PSNR: means over 30 others
# (`benchmarks/ratecontrol_curves.py --start 65 --photos 30`, results/ratecontrol_curves_30.json;
# the standard deviation between them is 0.014 at 5, 0.03 to 0.057 from 20 up). Over 16 photos
# the means were up to 0.018 lower; on the 60 targets of ratecontrol_counts.py these take
# g_a 125 -> 123 and g_s 366 -> 359. Measured from 70, START since (aec-18, the same 30 photos,
# results/ratecontrol_curves_30_start70.json: means within 0.04 of these), they took g_a 87 and
# g_s 292 on those targets and 94 and 297 on the held-out ones, against 86 and 285, 94 and 297
# with these: these stay.
STEEPER = {"size": ((5, 1.06), (10, 1.09), (20, 1.18), (30, 1.24), (40, 1.21), (45, 1.18), (55, 1.15),
                    (60, 1.11), (70, 1.08), (80, 1.07), (90, 1.06), (95, 1.06)),
           "psnr": ((5, 1.006), (10, 1.012), (20, 1.042), (30, 1.088), (40, 1.103), (45, 1.093), (55, 1.061),
                    (60, 1.057), (70, 1.052), (80, 1.072), (90, 1.077), (95, 1.079), (100, 1.079))}
# The flattest slope a secant step takes, as a share of the typical one (along `_Axis`): on a
# small image code lengths can stall for a quality; PSNR wavers near the top, and photos differ.
FLATTEST = {"size": 1 / 3, "psnr": 1 / 8}
REFINE = 0.1  # secant steps stop when they move by no more than this
# Within a step PSNR rises more slowly than across steps (only the gain moves), and it jumps at
# each edge (0.45 dB from 44 to 45 on one photo, against 0.14 a quality inside the step): the
# real curve lies below a smooth one near the top of a step and above it at the bottom. So a
# smooth curve's answer just below an edge is most often at the edge or past it, and the first
# try goes there, to the bottom of the step above, when the answer is within EDGE of it. On 48
# PSNR targets 0.37 above an edge (12 training photos): g_a 108 -> 103, g_s 303 -> 283; on the
# 60 of benchmarks/ratecontrol_counts.py, g_s 368 -> 366. A foreseen first try (FORESIGHT) so
# moved, from within 1.0 of the edge: g_a 88 -> 88 and held out 95 -> 98, g_s 291 -> 289 and
# 295 -> 290 (aec-20); from within 0.5, g_a 88 -> 90. Not taken.
EDGE = 0.5
# How far above its step a run's latents serve: a plain encode's reach 5, to the next step.
# Latents made for a step below, gained for the quality, against the plain encode: the change in
# rate at equal PSNR on 6 training photos (benchmarks/conditioning_reach.py), means per step
# and distance, and the worst photo. From 60 and 65, up to 7.5 above: -0.31% to -0.04%, worst
# +0.83% (10 above: at most -0.11%, worst +0.92%). From 70 up, to 12.5 above: -2.43% to
# +0.05%, worst +1.26% (15 above: at most +0.6%, worst +1.69%). Below 60, 7.5 above already
# costs up to +0.86%, and +3.13% on the worst photo. A file so made is not the plain encode at
# its quality: Result.latents_for says which step's latents it takes.
REACH = ((1, 4.0), (5, 5.0), (60, 10.0), (70, 15.0))  # (from step, reach)
# How PSNR rises with the quality on photos, in dB per quality: geometric means over 16
# training photos of the shipped model's curves from 20 to 85 (rounded), and beyond 85 the
# decay seen above 60 (a third less every 7.5). Secant steps for PSNR go along this shape.
PSNR_SLOPES = ((1, 0.18), (45, 0.185), (52, 0.13), (60, 0.10), (66, 0.072), (74, 0.044), (81, 0.029),
               (88, 0.019), (95, 0.0125), (100, 0.009))
# Values of the first run's curve the first estimate takes (each PSNR costs a g_s), and of the
# curve through the runs each later estimate takes. For PSNR one: how much steeper the real
# curve is than the first run's varies between photos (by 0.3 at quality 37), which leaves the
# estimate a quality or so off whatever it takes, and a second g_s moved it by about 0.2.
FIRST_EVALS = {"size": 2, "psnr": 1}
LATER_EVALS = {"size": 1, "psnr": 0}
# Where a PSNR search starts. How hard a photo is to code moves its whole PSNR curve up or down,
# and Pillow's JPEG at two qualities (about 30 ms on the sample photo) measures that: the default
# model's (aec-20's) PSNR at each step is about a + b * PSNR(JPEG 30) + c * PSNR(JPEG 60), least
# squares over 48 training photos (benchmarks/ratecontrol_start.py, results/ratecontrol_start.json).
# Left out of the fit, a photo's foreseen quality for a target from 25.6 is off by a standard
# deviation of 1.54 qualities, from 41.9 by 2.14 (in the answer's step for 73% and 79%); from
# 58.1 up, where curves flatten, by 13.2 or more (aec-18's fit: 1.55 and 2.09, 71% and 81%, 12.7).
# Below FORESIGHT_BELOW the first try is the foreseen quality itself; above, the search starts at
# START. On the 60 targets of ratecontrol_counts.py (aec-18): g_a 126 -> 96 and g_s 359 -> 309
# with a first try at the bottom of the foreseen step, the foreseen curve moved through its exact
# PSNR there giving the next (below 55: 101 and 312; below 70: 98 and 307). With the first try
# at the foreseen quality, a margin past the estimate when coming down from a fit (`placed`) and
# BOTTOM: g_a 97, g_s 293; on the 60 held-out targets (ratecontrol_counts.py --held-out), g_a
# 105 -> 104, g_s 313 -> 302.
JPEG_QUALITIES = (30, 60)
FORESIGHT = (  # (step, a, b, c)
    (1, 2.472, 2.2786, -1.4417), (5, 1.951, 2.2211, -1.3553), (10, 1.649, 2.0778, -1.1906),
    (15, 2.187, 1.6756, -0.8067), (20, 2.716, 1.5399, -0.6708), (25, 3.457, 1.3331, -0.4725),
    (30, 4.586, 1.1696, -0.3204), (35, 4.807, 1.2271, -0.3467), (40, 4.442, 1.3678, -0.4319),
    (45, 3.374, 1.5193, -0.5077), (50, 1.704, 1.6242, -0.5257), (55, -0.013, 1.7040, -0.5243),
    (60, -1.554, 1.7511, -0.5033), (65, -2.938, 1.7871, -0.4803), (70, -4.023, 1.8197, -0.4668),
    (75, -4.938, 1.8387, -0.4488), (80, -5.647, 1.8525, -0.4344), (85, -6.212, 1.8640, -0.4238),
    (90, -6.519, 1.8735, -0.4206), (95, -6.792, 1.8800, -0.4163), (100, -6.999, 1.8831, -0.4115),
)
FORESIGHT_BELOW = 60.0
# A PSNR search tries the bottom of the best one's run before a quality of a lower step less than
# this far below it, or to prove the best, or when the values the curve's answer came from rise
# more slowly than FLATTEST allows, or fall (see the loop).
BOTTOM = 1.0
# A miss CLOSE below the best proves it only where PSNR rises with the quality, and on a small
# image it wavers: on a 224x160 crop of the sample photo, aec-20's PSNR moves by up to 0.05 dB
# between qualities 0.05 apart within a step, and a target met at the step's bottom (40.00) was
# missed at 40.10, 40.20 and 40.35 and met at 40.45. So a best less than WAVER above its run's
# bottom ends the search only once the bottom, where PSNR is least in the step, was tried too
# (if it fits, it is the best). On the 120 targets of ratecontrol_counts.py (aec-18): g_s
# 582 -> 584, g_a as before; up to 1.0 above the bottom, 594. The more pixels, the less PSNR
# wavers: the standard deviation of its residuals from a straight line over 13 qualities 0.05
# apart is about WAVER_DB * (pixels / 100000) ** -WAVER_POWER (crops of 6 training photos, steps
# 45 and 80; benchmarks/ratecontrol_waver.py), 0.029 dB at 13824 pixels, 0.0014 at a megapixel.
# WAVER is for that crop (224 x 160) and falls as the waver does: 0.07 on the sample photo.
WAVER = 0.5
WAVER_PIXELS = 224 * 160
WAVER_DB = 0.0039
WAVER_POWER = 0.82
# A best that meets a PSNR target by less than FINE of what the curve rises over CLOSE is final
# unproved, where that rise is more than twice the waver above what it meets the target by: on
# the curve, the quality CLOSE below misses by more than PSNR wavers. (Near the top the curve
# rises less than it wavers: there a best still needs its miss.) On the 60 targets of
# ratecontrol_counts.py (aec-20), with WAVER falling with the pixels: g_s 301 -> 291, one file
# larger, by 0.31%; the quality 0.1 below the file's also meets the target for 2, against 1. On
# the 60 held out: 304 -> 295, no file larger; 2 against 1. (Without the waver's limit, 287 and
# 293, and 3 and 2.) A cap on a search's work instead (a run of g_a 1, a decode 0.46): at 4 runs,
# g_s 301 -> 250, but files +0.43% on average and up to +7.7%, near the top where it stops early.
FINE = 0.25


def waver(pixels: int) -> tuple[float, float]:
    """How much PSNR wavers within a step on an image of this size, in dB, and how far above its
    run's bottom a best ends a PSNR search only once the bottom was tried (WAVER)."""
    return WAVER_DB * (pixels / 100_000) ** -WAVER_POWER, WAVER * (WAVER_PIXELS / pixels) ** WAVER_POWER


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
    latents_for: float | None = None  # the step whose latents the file takes (codec.encode's latents_for)


def jpeg_psnrs(rgb: np.ndarray) -> list[float]:
    """PSNR of Pillow's JPEG (4:2:0) at JPEG_QUALITIES: how hard the photo is to code. At most
    60 dB: JPEG codes a flat image exactly, and its PSNR is infinite."""
    image = Image.fromarray(rgb)
    values = []
    for q in JPEG_QUALITIES:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=q, subsampling=2)
        values.append(min(metrics.psnr(rgb, np.asarray(Image.open(buffer).convert("RGB"))), 60.0))
    return values


class _Foresight:
    """The PSNR curve FORESIGHT foresees for a photo, at the step qualities."""

    def __init__(self, rgb: np.ndarray):
        steps, *columns = (np.array(column, float) for column in zip(*FORESIGHT))
        self.steps = steps
        j30, j60 = jpeg_psnrs(rgb)
        self.psnr = np.maximum.accumulate(columns[0] + columns[1] * j30 + columns[2] * j60)

    def __call__(self, q: float) -> float:
        return float(np.interp(q, self.steps, self.psnr))

    def quality(self, psnr: float) -> float:
        """Where the foreseen curve reaches this PSNR (1 or 100 beyond its ends)."""
        return float(np.interp(psnr, self.psnr, self.steps))


def reach(step: float) -> float:
    """How far above `step` its latents serve (REACH)."""
    return next(r for at, r in reversed(REACH) if step >= at)


class _Runs:
    """The g_a runs of one image: exact values across the step of each, estimates elsewhere from
    latents interpolated between them."""

    def __init__(self, m: zoo.CodingModel, source: codec.Source, noise: float, device: str):
        self.m, self.source, self.noise, self.device = m, source, noise, device
        self.transforms = codec.transforms_for(m, device)
        self.y: dict[float, np.ndarray] = {}  # step -> g_a's latents for it, before the gain
        self.exact: dict[tuple, object] = {}  # where g_a ran for the quality: the file's latents, size, PSNR
        self.estimates: dict[tuple, object] = {}  # elsewhere, from the runs so far
        self._container: int | None = None

    def step(self, q: float) -> float | None:
        """The run whose latents the file at q takes: the highest at or below q that reaches it
        (REACH), or None. A run is made only for a quality none reaches, and every run is for a
        step (a multiple of 5, or 1), so a new run never takes a quality from an older one: the
        exact values found stay the file's."""
        if not self.m.config.quality_conditioned:
            return next(iter(self.y), None)  # y does not depend on the quality: one run serves all
        return max((c for c in self.y if c <= q < c + reach(c)), default=None)

    def ran(self, q: float) -> bool:
        """Whether a run reaches q: then the file's latents at q are at hand, and all at q is exact."""
        return self.step(q) is not None

    def top(self, q: float) -> float:
        """Where the latents change above q: the end of its run's reach, or the next step."""
        c = self.step(q)
        if c is not None and self.m.config.quality_conditioned:
            return c + reach(c)
        return (q // codec.CONDITIONING_STEP + 1) * codec.CONDITIONING_STEP

    def run(self, q: float, centred: bool = True) -> None:
        """g_a where no run reaches q: for q's step, or `centred`, for the step whose reach has
        q furthest from either end (an estimate may be off either way), but none reaching into
        an older run's."""
        if self.ran(q):
            return
        step = codec.conditioning(q)
        if centred and self.m.config.quality_conditioned:
            floor = max((c + reach(c) for c in self.y if c + reach(c) <= q), default=1.0)
            steps = [c for c in (step - k * codec.CONDITIONING_STEP for k in range(4)) if c >= floor]
            step = max((c for c in steps if c + reach(c) > q), key=lambda c: min(q - c, c + reach(c) - q))
        self.y[step] = codec.analysis(self.m, self.source.rgb, step, self.device, self.noise)
        self.estimates.clear()  # they read the runs nearest them, which may have changed

    def _y_at(self, q: float) -> np.ndarray:
        c = self.step(q)
        if c is not None:
            return self.y[c]
        if len(self.y) == 1:
            return next(iter(self.y.values()))
        k = codec.conditioning(q)
        (k0, y0), (k1, y1) = sorted(self.y.items(), key=lambda kv: abs(kv[0] - k))[:2]
        return y0 + math.log(k / k0) / math.log(k1 / k0) * (y1 - y0)

    def _store(self, q: float) -> dict:
        return self.exact if self.ran(q) else self.estimates

    def latents(self, q: float) -> codec.Latents:
        """The integer latents at q: the file's where g_a ran for q, else an estimate (the integer
        networks in float32, on latents interpolated between the runs nearest q)."""
        store = self._store(q)
        if ("latents", q) not in store:
            scaled = self._y_at(q) * self.transforms.gain(quality_to_t(q))[:, None, None]
            estimate = store is self.estimates
            store["latents", q] = codec.quantize_scaled(self.m, scaled, self.transforms, estimate=estimate)
        return store["latents", q]

    def streams(self, q: float) -> tuple[bytes, bytes]:
        """The coded z and y streams at q, where g_a ran for q."""
        if ("streams", q) not in self.exact:
            self.exact["streams", q] = codec.encode_latents(self.m, self.latents(q))
        return self.exact["streams", q]

    def coded_streams(self, q: float) -> int:
        """The streams' size at q, where g_a ran for q."""
        return sum(map(len, self.streams(q)))

    def _log_ideal(self, q: float) -> float:
        store = self._store(q)
        if ("log_ideal", q) not in store:
            store["log_ideal", q] = math.log(codec.estimated_stream_bytes(self.m, self.latents(q)))
        return store["log_ideal", q]

    def log_streams(self, q: float) -> float:
        """The log of the streams' size at q: coded where g_a ran for q; elsewhere their ideal
        code lengths, times the ratio of coded to ideal at the nearest quality coded."""
        if self.ran(q):
            return math.log(self.coded_streams(q))
        if ("log_streams", q) not in self.estimates:
            near = min(self._coded(), key=lambda r: abs(r - q))
            bias = math.log(self.coded_streams(near)) - self._log_ideal(near)
            self.estimates["log_streams", q] = self._log_ideal(q) + bias
        return self.estimates["log_streams", q]

    def container(self) -> int:
        """The bytes of the file besides its two streams (alpha, ICC, EXIF, the header): the same
        at every quality."""
        if self._container is None:
            q = self._coded()[0]
            whole = len(codec.pack(self.m, self.source, self.streams(q), q, self.noise))
            self._container = whole - self.coded_streams(q)
        return self._container

    def psnr(self, q: float) -> float:
        """g_s's PSNR at q: of the file where g_a ran for q, else of the estimated latents there."""
        store = self._store(q)
        if ("psnr", q) not in store:
            h, w = self.source.rgb.shape[:2]
            pixels = codec.synthesize(self.m, self.latents(q), q, w, h, self.device)
            store["psnr", q] = metrics.psnr(self.source.rgb, pixels)
        return store["psnr", q]

    def _coded(self) -> list[float]:
        """Qualities whose streams are coded, or else the runs' own (coded when asked)."""
        return self.measured("streams") or list(self.y)

    def measured(self, kind: str) -> list[float]:
        """The qualities where this exact value ("psnr", "streams") is known."""
        return [key[1] for key in self.exact if key[0] == kind]


def _clip(q: float) -> float:
    return round(min(max(q, 1.0), 100.0), 2)


class _Axis:
    """The axis secant steps are taken along: u(q), on which a typical photo's curve is
    straight. Code lengths rise steadily with the quality: u = q. PSNR flattens from mid
    quality up (PSNR_SLOPES), so there u is the typical slope summed, over DB_PER_QUALITY: a
    step near the flat top then reaches as far as the curve's gap asks, where one along the
    quality stops short and g_a runs again for each step it falls short by."""

    QUALITIES = np.linspace(1.0, 100.0, 1981)  # every 0.05

    def __init__(self, slopes: tuple[tuple[float, float], ...] | None = None):
        q = self.QUALITIES
        if slopes is None:
            self.u = q
        else:
            at, slope = (np.array(column, float) for column in zip(*slopes))
            du = np.interp(q, at, slope) / DB_PER_QUALITY
            self.u = np.concatenate([[0.0], np.cumsum((du[1:] + du[:-1]) / 2 * np.diff(q))])

    def __call__(self, q: float) -> float:
        return float(np.interp(q, self.QUALITIES, self.u))

    def step(self, q: float, by: float) -> float:
        """The quality at u(q) + by (within 1..100)."""
        return _clip(float(np.interp(self(q) + by, self.u, self.QUALITIES)))


_QUALITY_AXIS, _PSNR_AXIS = _Axis(), _Axis(PSNR_SLOPES)


def _solve(f: Callable[[float], float], goal: float, q: float, slope: float, bounds: tuple[float, float],
           evals: int, axis: _Axis, exact: Callable[[float], bool] = lambda q: False) -> tuple[float, float]:
    """Where the rising f meets the goal: secant steps from q, through at most `evals` more
    values of f, until a step is no longer than REFINE or reaches a quality where f is `exact`
    (the caller measures it there). The estimate, and the slope there. Over a third of a
    quality or less the code lengths move in jumps, so shorter steps keep the slope they had;
    longer ones measure it, kept within `bounds`."""
    fq = f(q)
    for i in range(evals + 1):
        nxt = axis.step(q, (goal - fq) / slope)
        if i == evals or abs(nxt - q) <= REFINE or exact(nxt):
            break
        fn = f(nxt)
        if abs(nxt - q) >= 0.3:
            slope = min(max((fn - fq) / (axis(nxt) - axis(q)), bounds[0]), bounds[1])
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
        fits, goal = lambda q: runs.psnr(q) >= target.value, lambda: target.value
    else:  # the streams' share of the budget
        fits = lambda q: runs.container() + runs.coded_streams(q) <= budget
        goal = lambda: math.log(max(budget - runs.container(), 1))
    end, side = (100.0, 1.0) if psnr else (1.0, -1.0)  # the end that fits most, the side that fits
    kind = "psnr" if psnr else "size"
    typical = DB_PER_QUALITY if psnr else LOG_SIZE_PER_QUALITY
    steeper = lambda q: float(np.interp(q, *zip(*STEEPER[kind])))
    bounds = (typical * FLATTEST[kind], typical * 4)

    axis = _PSNR_AXIS if psnr else _QUALITY_AXIS
    curve = _Foresight(source.rgb) if psnr and m.config.quality_conditioned else None
    foreseen = curve.quality(target.value) if curve is not None else FORESIGHT_BELOW
    foresee = curve is not None and foreseen < FORESIGHT_BELOW
    if foresee:
        # The foreseen quality is the first try (g_a runs for its step), and the foreseen
        # curve's slope there sends the next.
        q = _clip(foreseen + MARGIN)
        slope = (curve(q + 0.5) - curve(q - 0.5)) / (axis(q + 0.5) - axis(q - 0.5))
        slope = min(max(slope, bounds[0]), bounds[1])
    else:
        start = START[kind]
        runs.run(start, centred=False)
        base = value(start)
        own = runs.step(start)
        # Its latents at every quality: exact where it reaches, elsewhere made steeper.
        first = lambda q: value(q) if runs.step(q) == own else base + steeper(q) * (value(q) - base)
        q, slope = _solve(first, goal(), start, typical, bounds, FIRST_EVALS[kind], axis)
    best = miss = None  # the best quality that fits, the nearest one past it that does not
    farther = 0  # PSNR: tries past the best that fitted by more than the curve allowed
    proof = None  # the last try CLOSE (or farther) past the best

    def placed(q: float) -> float:
        """Where to try next for a curve's answer q: a margin inside it, or CLOSE inside a miss
        near it (if that fits, no quality more than CLOSE better does). For PSNR, below a best
        that fits and with no miss yet, a margin past it: PSNR wavers by about what a tenth of
        a quality adds, so one inside fits again as often as not, and the search creeps down
        a step at a time, where one past it most often misses and closes the bracket."""
        if miss is not None and (q - miss) * side < CLOSE:
            return _clip(miss + side * CLOSE)
        if psnr and miss is None and best is not None and (q - best) * side < 0:
            return _clip(q - side * MARGIN)
        return q if q in (1.0, 100.0) else _clip(q + side * MARGIN)  # the ends need no margin

    if not foresee:
        q = placed(q)
        if psnr and q < 100.0 and q + EDGE >= runs.top(q):
            q = runs.top(q)  # the bottom of the step above: see EDGE
    tried: set[float] = set()
    fine = False  # the best fits by less than the curve rises over CLOSE below it: see FINE
    wavering, near_bottom = waver(source.pixels)  # in dB, and in qualities: see WAVER
    for _ in range(STEPS):
        if q in tried or (not runs.ran(q) and len(runs.y) == RUNS):
            break
        tried.add(q)
        runs.run(q)
        if fits(q):
            best = q if best is None or (q - best) * side < 0 else best
            rise, over = slope * (axis(q) - axis(q - CLOSE)), value(q) - goal()
            fine = psnr and best == q and over < FINE * rise and rise - over > 2 * wavering
            if psnr and q == proof and over > rise / 2:
                farther += 1  # the curve is flatter here than it seemed: the next try goes farther
        else:
            miss = q if miss is None or (q - miss) * side > 0 else miss
        if best is not None and (fine or miss is not None and abs(miss - best) <= CLOSE + 0.005):
            lowest = runs.step(best)  # a step's bottom, where the model's latents follow the quality
            if psnr and m.config.quality_conditioned and lowest not in tried and best - lowest <= near_bottom:
                q = lowest  # the bottom too: see WAVER
                continue
            break  # no quality more than CLOSE better fits
        if q == end and best != q:
            break  # not even the end fits
        # The slope from the exact value nearest q (not too near: code lengths move in jumps).
        # For PSNR, one in q's own step if there is one: within a step only the gain moves, and
        # at a step's edge PSNR jumps (by 0.4 dB on one photo at 45), as g_a's latents change.
        near = [r for r in runs.measured("psnr" if psnr else "streams") if abs(r - q) >= 0.3]
        flat = False  # the values nearest q rise more slowly than the flattest slope taken, or fall
        if near:
            same = [r for r in near if psnr and runs.step(r) == runs.step(q)]
            r = min(same or near, key=lambda r: abs(r - q))
            measured = (value(q) - value(r)) / (axis(q) - axis(r))
            flat = measured < bounds[0]
            slope = min(max(measured, bounds[0]), bounds[1])
        answer, slope = _solve(value, goal(), q, slope, bounds, LATER_EVALS[kind], axis, runs.ran)
        proving = best is not None and (best - answer) * side <= CLOSE
        if proving:
            # The curve puts no quality more than CLOSE better than the best: a miss CLOSE better
            # proves it. For PSNR, each time the one tried fits instead, by more than half what
            # the curve rises over CLOSE, the curve was flatter than it seemed (near the top it
            # moves by thousandths of a dB per 0.1, and wavers as much), and the next try goes
            # twice as far, up to a miss; one that fits by less is at the answer, and the next
            # goes CLOSE further. A best at its step's bottom is proved CLOSE below it, never
            # farther: there PSNR is greatest in the step below (within a step it rises with
            # the quality). (Code lengths are steep: there the curve's answer is close, and one
            # try further is the proof.)
            gap = CLOSE * 2**farther if psnr and best != runs.step(best) else CLOSE
            if miss is not None:
                gap = min(gap, max(CLOSE, round(abs(best - miss) / 2, 2)))
            q = proof = _clip(best - side * gap)
        else:
            q = placed(answer)
        if best is not None and (not runs.ran(q) or q < runs.step(best)):
            lowest = runs.step(best)  # of best's run, where every value is exact
            if psnr and lowest not in tried and (proving or flat or q > lowest - BOTTOM):
                # Tried before a quality of a lower step near it, whether g_a ran there or not:
                # PSNR is least there in its step, so if it misses, the answer is in this step,
                # above it. Further below, the bottom nearly always fits: its try is spared,
                # unless the answer came from values that rose too slowly or fell (`flat`).
                q = lowest
            elif proving and not runs.ran(q):
                break  # proving the best would take another run of g_a
    while best is None and q != end:  # rare: plain steps towards the end that fits most
        q = _clip(q + 10 * side * MARGIN)
        runs.run(q)
        best = q if fits(q) else None
    q = end if best is None else best
    runs.run(q)
    data = codec.pack(m, source, runs.streams(q), q, noise)
    reached = fits(q)
    latents_for = runs.step(q) if m.config.quality_conditioned else None
    return Result(data, q, len(data) * 8 / source.pixels, runs.psnr(q) if psnr else None, reached, latents_for)
