"""encode / decode: the only place where image, model, coder and container meet.

    pixels --pad--> g_a --gain--> y', h_a --> z_hat --coder--> z stream
    z_hat --h_s (exact integers)--> index, mean --> round(y' - mean) --coder--> y stream
    streams + header --container--> .aec

With a context model the y stream has several parts: the anchors (in channel groups, if the
model has them), then the other half of y, each part with the index and mean that the context
model derives from the parts decoded before it (context.py).

Decoding runs the same integer steps in reverse order, then g_s on any device.

The float transforms run in numpy on the CPU (npnet.py), so coding needs no torch; with a
torch device (CUDA, or the encoder search of `effort`) they run in torch instead
(model.TorchTransforms). Both give the same integers wherever the file is decoded: only
the choice of latents at encode time, and pixels by a rounding step, can differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import coder, container, exact, extras, tiling, zoo
from .config import DEFAULT_QUALITY, quality_to_t
from .container import ALPHA2, DENOISE, EXIF, ICC, Y_STREAM, Z_STREAM, FormatError
from .denoise import noise_level
from .image import Source, prepare
from .tables import information_bits

PAD = tiling.STRIDE  # g_a downsamples by 16; h_s's output is cropped to y's size

class DecodeError(ValueError):
    """The data cannot be decoded (damaged file, missing model, ...)."""


@dataclass(frozen=True)
class Latents:
    """The integer content of a file: z symbols, y symbols and what h_s derived from z."""

    z_hat: np.ndarray  # integers (N, hz, wz)
    y_symbols: np.ndarray  # int32 (M, hy, wy): round(y' - mean)
    index: np.ndarray  # int32 (M, hy, wy): scale table of each y symbol
    mean_int: np.ndarray  # int32 (M, hy, wy): mean = mean_int * MEAN_SCALE


def transforms_for(model: zoo.CodingModel, device="cpu"):
    """The float transforms on a device: "cpu" runs numpy (npnet.Transforms); "torch" runs the
    model's torch network on the CPU; "cuda", "auto" (CUDA where there is one) or a
    torch.device run it there (model.TorchTransforms)."""
    if isinstance(device, str) and device == "cpu":
        return model.transforms
    torch = extras.require("torch", "torch", f"--device {device}")
    from .model import TorchTransforms

    if device == "auto" and not torch.cuda.is_available():
        return model.transforms
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    target = {"torch": "cpu", "auto": "cuda"}.get(device, device) if isinstance(device, str) else device
    return TorchTransforms(model.net, torch.device(target))


def _z_table_ids(z_shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.arange(z_shape[0])[:, None, None], z_shape)


def _latent_sizes(width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    hy, wy = -(-height // PAD), -(-width // PAD)
    return (hy, wy), (-(-hy // 4), -(-wy // 4))


CONDITIONING_STEP = 5  # g_a makes its latents for qualities 1, 5, 10, ..., 95, 100


def conditioning(quality: float) -> float:
    """The quality g_a makes its latents for: the multiple of CONDITIONING_STEP at or below it
    (1 below the first). Within a step only the gain moves, so one run of g_a, most of an
    encode, serves every quality of its step: rate control searches them for the price of
    quantizing. Latents made for up to 4.5 qualities lower, gained for the quality itself, cost
    nothing measurable against those made for it (benchmarks/results/conditioning.json: rate
    at equal PSNR +0.01% on average over 6 training photos); latents made for a higher quality
    and gained down cost more, so a step rounds down."""
    step = math.floor(quality / CONDITIONING_STEP) * CONDITIONING_STEP
    return float(min(max(step, 1), 100))


def _t(model: zoo.CodingModel, quality: float) -> float | None:
    """The quality axis g_a is conditioned on, or None for a model whose y ignores it. `quality`
    is the file's, or the step whose latents it takes (ratecontrol.REACH)."""
    return quality_to_t(conditioning(quality)) if model.config.quality_conditioned else None


def analysis(model: zoo.CodingModel, rgb: np.ndarray, quality: float, device="cpu", noise: float = 0.0) -> np.ndarray:
    """g_a, tile by tile: uint8 (H, W, 3) -> latent y (M, H/16, W/16), before any gain."""
    return tiling.analysis(transforms_for(model, device), rgb, noise, _t(model, quality))


def analyze(model: zoo.CodingModel, rgb: np.ndarray, quality: float, device="cpu",
            noise: float = 0.0, effort: int = 0, latents_for: float | None = None) -> Latents:
    steps = 0
    if effort:
        extras.require("torch", "torch", "--effort")
        from . import refine  # the search needs torch's gradients

        steps = refine.steps_for(effort)
    if steps and noise:
        raise ValueError("--effort fits the latents to the input, noise included: use it without --denoise")
    transforms = transforms_for(model, "torch" if steps and device == "cpu" else device)  # the search needs gradients
    y = tiling.analysis(transforms, rgb, noise, _t(model, quality if latents_for is None else latents_for))
    y *= transforms.gain(quality_to_t(quality))[:, None, None]
    if not steps:
        return quantize_scaled(model, y, transforms)
    z_hat = transforms.hyper_analysis(y.transpose(1, 2, 0))  # the search keeps z_hat and the hyperprior's tables
    index, mean_int = _hyper(model, z_hat, tuple(y.shape[-2:]))
    y = refine.refine(model, rgb, y, index, mean_int, quality, transforms.device, steps)
    return quantize_with_tables(model, y, z_hat, index, mean_int)


def quantize(model: zoo.CodingModel, y: np.ndarray, quality: float, device="cpu") -> Latents:
    """Latent y of g_a -> the integer latents of a file at this quality (y is left as it was)."""
    transforms = transforms_for(model, device)
    return quantize_scaled(model, y * transforms.gain(quality_to_t(quality))[:, None, None], transforms)


def quantize_scaled(model: zoo.CodingModel, y: np.ndarray, transforms, estimate: bool = False) -> Latents:
    """Latent y (M, h, w) already scaled by the quality's gain -> integer latents; y is left as it was.
    With `estimate`, the integer networks run in float32: faster, and an odd table differs, so
    the latents are for estimates only, never for a file."""
    z_hat = transforms.hyper_analysis(y.transpose(1, 2, 0))
    index, mean_int = _hyper(model, z_hat, tuple(y.shape[-2:]), estimate)
    return quantize_with_tables(model, y, z_hat, index, mean_int, estimate)


def _hyper(model: zoo.CodingModel, z_hat: np.ndarray, size: tuple[int, int],
           estimate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    return exact.h_s(model.h_s, z_hat, size, model.config.levels, dtype=np.float32 if estimate else np.float64)


def _symbols(y: np.ndarray, mean_int: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """round(y' - mean), into `out` if given. Large images make y hundreds of megabytes: the
    residual reuses the means' buffer."""
    residual = exact.means(mean_int)
    np.subtract(y, residual, out=residual)
    np.round(residual, out=residual)
    if out is None:
        return residual.astype(np.int32)
    np.copyto(out, residual, casting="unsafe")  # whole numbers already: the cast is exact
    return out


def quantize_with_tables(model: zoo.CodingModel, y: np.ndarray, z_hat: np.ndarray, index: np.ndarray,
                         mean_int: np.ndarray, estimate: bool = False) -> Latents:
    """Latent y' (already scaled by the quality's gain) -> integer latents, with z_hat and the
    hyperprior's index and mean given: the context model (if any) corrects those two in place,
    part by part, from the symbols of the parts before. `estimate`: as quantize_scaled's."""
    y_symbols = _symbols(y, mean_int)
    if model.context is not None:
        for part in model.parts[1:]:
            exact.correct(part, y_symbols, index, mean_int, model.config.levels,
                          dtype=np.float32 if estimate else np.float64)
            fixed = part.corrected
            _symbols(y[fixed], mean_int[fixed], out=y_symbols[fixed])
    return Latents(z_hat=z_hat, y_symbols=y_symbols, index=index, mean_int=mean_int)


def synthesize(model: zoo.CodingModel, latents: Latents, quality: float, width: int, height: int,
               device="cpu") -> np.ndarray:
    y_hat = exact.means(latents.mean_int)
    y_hat += latents.y_symbols
    return tiling.synthesis(transforms_for(model, device), y_hat, quality_to_t(quality), height, width)


def estimated_stream_bytes(model: zoo.CodingModel, latents: Latents) -> float:
    """The model's own estimate of the two streams' size: their ideal code lengths."""
    bits = information_bits(latents.y_symbols, latents.index, model.y_tables)
    bits += information_bits(latents.z_hat, _z_table_ids(latents.z_hat.shape), model.z_tables)
    return bits / 8 + 8  # and the ANS coders' final states


def encode_latents(model: zoo.CodingModel, latents: Latents) -> tuple[bytes, bytes]:
    z = coder.encode(latents.z_hat, _z_table_ids(latents.z_hat.shape), model.z_tables)
    if model.context is None:
        return z, coder.encode(latents.y_symbols, latents.index, model.y_tables)
    h, w = latents.y_symbols.shape[1:]
    parts = []
    for part in model.parts:
        at = part.positions(h, w)
        parts.append((latents.y_symbols[part.channels][:, at], latents.index[part.channels][:, at]))
    return z, coder.encode_parts(parts, model.y_tables)


def decode_latents(model: zoo.CodingModel, z_stream: bytes, y_stream: bytes, width: int,
                   height: int) -> Latents:
    (hy, wy), (hz, wz) = _latent_sizes(width, height)
    z_shape = (model.config.N, hz, wz)
    z_hat = coder.decode(z_stream, _z_table_ids(z_shape), model.z_tables)
    index, mean_int = _hyper(model, z_hat, (hy, wy))
    if model.context is None:
        y_symbols = coder.decode(y_stream, index, model.y_tables)
    else:
        reader = coder.Reader(y_stream)
        y_symbols = np.zeros(index.shape, np.int32)
        for part in model.parts:
            if part.layers is not None:
                exact.correct(part, y_symbols, index, mean_int, model.config.levels)
            at, channels = part.positions(hy, wy), part.channels
            y_symbols[channels][:, at] = reader.read(index[channels][:, at], model.y_tables)
        reader.finish()
    return Latents(z_hat=z_hat, y_symbols=y_symbols, index=index, mean_int=mean_int)


def write(model: zoo.CodingModel, source: Source, latents: Latents, quality: float,
          noise: float = 0.0) -> bytes:
    """Entropy-code the latents and wrap them, with alpha and ICC, into .aec bytes."""
    return pack(model, source, encode_latents(model, latents), quality, noise)


def pack(model: zoo.CodingModel, source: Source, streams: tuple[bytes, bytes], quality: float,
         noise: float = 0.0) -> bytes:
    """Wrap the coded z and y streams, with alpha and ICC, into .aec bytes."""
    z, y = streams
    sections = {Z_STREAM: z, Y_STREAM: y}
    if noise:
        sections[DENOISE] = container.pack_noise_level(noise)
    if source.alpha is not None:
        sections[ALPHA2] = container.pack_alpha(source.alpha)
    if source.icc_profile:
        sections[ICC] = source.icc_profile
    if source.exif:
        sections[EXIF] = source.exif
    h, w = source.rgb.shape[:2]
    header = container.Header(w, h, source.mode, quality, model.name, model.digest)
    return container.pack(container.AecFile(header, sections))


def load_model(model: str | zoo.CodingModel | None) -> zoo.CodingModel:
    return model if isinstance(model, zoo.CodingModel) else zoo.load(model)


def encode(image: Image.Image | np.ndarray, quality: float = DEFAULT_QUALITY,
           model: str | zoo.CodingModel | None = None, device: str = "cpu", icc_profile: bytes | None = None,
           denoise: float | str | None = None, effort: int = 0, latents_for: float | None = None) -> bytes:
    """Compress an image (PIL or uint8 array) into .aec bytes. quality: 1..100, higher is better.

    denoise: remove noise while encoding: a level (standard deviation, 0..255 scale) or "auto"
    to estimate it; the file decodes as any other.
    effort: 0..4, how hard the encoder searches (refine.STEPS): 0 is one pass of g_a; higher
    levels fit the latents to this image, for smaller files at the same quality, more slowly.
    latents_for: the step g_a makes its latents for, at or below the quality (default: its own,
    `conditioning`); rate control's files may take a lower one's (ratecontrol.REACH)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if latents_for is not None and not 1 <= latents_for <= quality:
        raise ValueError(f"latents_for must be in 1..quality, got {latents_for}")
    m = load_model(model)
    source = prepare(image, icc_profile)
    quality = round(float(quality), 2)
    noise = noise_level(m, source.rgb, denoise)
    latents = analyze(m, source.rgb, quality, device, noise, effort, latents_for)
    return write(m, source, latents, quality, noise)


def _model_for(header: container.Header, model: str | zoo.CodingModel | None) -> zoo.CodingModel:
    try:
        m = load_model(model or header.model)
    except zoo.ModelNotFound as e:
        raise DecodeError(f"file needs weights {header.model_hash.hex()} of model '{header.model}': {e}") from None
    if m.digest != header.model_hash:
        raise DecodeError(f"file was made with other weights for '{header.model}' "
                          f"({header.model_hash.hex()}; installed: {m.digest.hex()})")
    return m


def read(data: bytes, model: str | zoo.CodingModel | None = None,
         max_pixels: int = container.DEFAULT_MAX_PIXELS) -> tuple[container.AecFile, zoo.CodingModel, Latents]:
    """Parse a file and entropy-decode its latents (no synthesis)."""
    try:
        f = container.unpack(data, max_pixels)
        m = _model_for(f.header, model)
        h = f.header
        latents = decode_latents(m, f.sections[Z_STREAM], f.sections[Y_STREAM], h.width, h.height)
    except (FormatError, coder.CorruptStream) as e:
        raise DecodeError(str(e)) from None
    return f, m, latents


def decode(data: bytes, model: str | zoo.CodingModel | None = None, device: str = "cpu",
           max_pixels: int = container.DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decompress .aec bytes into a PIL image in the mode it was encoded from."""
    f, m, latents = read(data, model, max_pixels)
    h = f.header
    rgb = synthesize(m, latents, h.quality, h.width, h.height, device)
    image = Image.fromarray(rgb, "RGB")
    if h.mode in ("L", "LA"):
        image = image.convert("L")
    if h.mode in ("RGBA", "LA"):
        try:
            alpha = container.unpack_alpha(f.sections, h.width, h.height)
        except FormatError as e:
            raise DecodeError(str(e)) from None
        image.putalpha(Image.fromarray(alpha))
    if ICC in f.sections:
        image.info["icc_profile"] = f.sections[ICC]
    if EXIF in f.sections:
        image.info["exif"] = f.sections[EXIF]
    return image
