"""encode, decode and denoise: images in, .aec files out, and back."""

from __future__ import annotations

import time

import click

from .. import container, files
from ..config import DEFAULT_QUALITY
from ..image import DEFAULT_OUTPUT_QUALITY, LOSSY, format_for, image_bytes, read_input, read_input_image

POSITIVE = click.FloatRange(0, min_open=True)
RAY = click.option("--ray", "ray_address", is_flag=False, flag_value="auto", default=None, metavar="[ADDRESS]",
                   help="Run on a Ray cluster ('auto' when given alone, or HOST:PORT): inputs are files, folders, "
                   "globs or fsspec URLs, outputs go into -d OUT beside OUT/manifest.jsonl; a second run skips "
                   "what is done; -j sets the actors (default: one per CPU of the cluster). Needs aecompress[ray].")


def _is_aec(path: str) -> bool:
    return path.lower().endswith(".aec")


def _output_format(path: str | None) -> str:
    """The image format -o asks for (PNG for none or '-'): a usage error, before any work, if
    this Pillow cannot write it."""
    try:
        return format_for(path or "-")
    except ValueError as e:
        raise click.UsageError(str(e)) from None



@click.command(epilog=files.EXIT_STATUS)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file ('-' for stdout). Default: input name with .aec; "
              "`encode in.png out.aec` works too.")
@click.option("-q", "--quality", type=click.FloatRange(1, 100),
              help=f"1..100, higher is better; continuous (e.g. 62.5).  [default: {DEFAULT_QUALITY}]")
@click.option("--target-bpp", type=POSITIVE, help="Pick the quality that gives this many bits per pixel.")
@click.option("--target-size", type=click.IntRange(1),
              help="Pick the highest quality whose file fits in this many bytes.")
@click.option("--target-psnr", type=POSITIVE, help="Pick the lowest quality that reaches this PSNR (dB).")
@click.option("-e", "--effort", type=click.IntRange(0, 4), default=0, show_default=True,
              help="Encoder search: 0 = one pass (fast); 1..4 fit the latents to this image by gradient "
              "descent (8, 16, 32, 64 steps): smaller files at the same quality, each level about twice "
              "as slow (level 2: about 10 s per megapixel on 2 cores). Decoding is unchanged.")
@click.option("--verify", is_flag=True, help="Decode the result again and print its PSNR.")
@click.option("--strip", is_flag=True, help="Drop the ICC profile and EXIF (kept by default).")
@files.DENOISE
@files.file_options
@RAY
@files.one_line_errors
def encode(inputs, output, quality, target_bpp, target_size, target_psnr, effort, verify, strip, denoise,
           out_dir, jobs, max_pixels, model, device, force, quiet, ray_address):
    """Compress images (PNG, JPEG, WebP, TIFF, BMP, ...) into .aec files.

    \b
    Rate control (instead of -q): --target-size 20000, --target-bpp 0.5 or --target-psnr 34
    finds the best continuous quality for it, to about 0.1: the model's own estimates place it,
    real coding (and for PSNR, decoding) checks it. From 60 up the file may reuse the analysis
    made for a quality up to 15 lower (one run fewer; as small at equal PSNR on average), so -q
    at its quality can give another file. A target no quality reaches is an error that names
    the nearest one reached.
    Noisy photos: --denoise drops the noise instead of spending bits on it (--verify then
    compares with the noisy input, so its PSNR counts the removed noise as error).
    """
    targets = [(k, v) for k, v in (("bpp", target_bpp), ("size", target_size), ("psnr", target_psnr)) if v is not None]
    if len(targets) > 1:
        raise click.UsageError("give at most one of --target-bpp, --target-size, --target-psnr")
    if targets and quality is not None:
        raise click.UsageError(f"-q and --target-{targets[0][0]} both set the quality: give one of them")
    if targets and effort:
        raise click.UsageError("--effort works with -q; rate control (--target-*) runs at effort 0")
    if denoise and effort:
        raise click.UsageError("--effort fits the latents to the input, noise included: use it without --denoise")
    if denoise and target_psnr:
        raise click.UsageError("--target-psnr measures against the noisy input: use it without --denoise")
    if ray_address:
        from .. import ray_job

        return ray_job.run("encode", inputs, out_dir, ray_address, output=output, jobs=jobs, force=force,
                           quiet=quiet, max_pixels=max_pixels, model=model, device=device, quality=quality,
                           target=targets[0] if targets else None, effort=effort, denoise=denoise, strip=strip,
                           verify=verify)
    inputs, output = files.positional_output(inputs, output, out_dir, lambda a, b: _is_aec(b) and not _is_aec(a))
    pairs = files.plan(inputs, output, out_dir, force, lambda p: p.with_suffix(".aec").name)

    from .. import codec, ratecontrol, zoo

    m = zoo.load(model)
    target = ratecontrol.Target(*targets[0]) if targets else None
    notice = files.notifier(quiet)

    def one(pair: tuple[str, str]) -> files.Done:
        src, dst = pair
        start = time.perf_counter()
        raw, image = read_input_image(src, max_pixels, notice)
        if strip:
            image.info.pop("icc_profile", None)
            image.info.pop("exif", None)
        if target:
            result = ratecontrol.encode_to_target(image, target, m, device, denoise)
            if not result.reached:
                raise ValueError(f"{src}: {_out_of_reach(target, result)}")
            data, q, note = result.data, result.quality, f" (target {target.kind} {target.value:g})"
        else:
            q = codec.DEFAULT_QUALITY if quality is None else quality
            data, note = codec.encode(image, q, model=m, device=device, denoise=denoise, effort=effort), ""
        if effort:
            note += f", effort {effort}"
        if denoise is not None:
            level = container.unpack_noise_level(container.unpack(data).sections.get(container.DENOISE, b"\0\0"))
            note += f", denoised at level {level:g}" if level else ", no noise to remove"
        seconds = time.perf_counter() - start
        line = (f"{src} -> {dst}: {len(data)} bytes, {len(data) * 8 / (image.width * image.height):.4f} bpp, "
                f"q {q:g}{note}, {seconds:.2f} s")
        if verify:
            line += f", PSNR {_verify(image, data, m, device):.2f} dB"
        files.emit(dst, data, force)
        return files.Done(line, len(raw), len(data), dst != "-")  # stdout may carry the data

    files.for_each(pairs, one, jobs, quiet, "encoding")


def _out_of_reach(target, result) -> str:
    """What an unreachable target can get nearest: the smallest file (quality 1) or the
    highest PSNR (quality 100)."""
    if target.kind == "psnr":
        nearest = f"the highest is {result.psnr:.2f} dB"
    else:
        nearest = f"the smallest file is {len(result.data)} bytes, {result.bpp:.4f} bpp"
    return f"--target-{target.kind} {target.value:g} is out of reach: {nearest} (quality {result.quality:g})"


def _verify(image, data: bytes, model, device: str) -> float:
    """PSNR of the file's decoded pixels against the image that was encoded."""
    import numpy as np

    from .. import codec
    from ..metrics import psnr

    mode = image.mode if image.mode in ("L", "RGB") else "RGB"
    back = codec.decode(data, model=model, device=device)
    return psnr(np.asarray(image.convert(mode)), np.asarray(back.convert(mode)))


@click.command(epilog=files.EXIT_STATUS)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output image ('-' for stdout, PNG); the format follows the extension "
              "(.png, .jpg, .webp, .avif, .tif, .bmp, .gif, ...); `decode in.aec out.png` works too.")
@click.option("-q", "--quality", type=click.IntRange(1, 100),
              help=f"Quality of a JPEG, WebP or AVIF output, 1..100.  [default: {DEFAULT_OUTPUT_QUALITY}]")
@files.file_options
@RAY
@files.one_line_errors
def decode(inputs, output, quality, out_dir, jobs, max_pixels, model, device, force, quiet, ray_address):
    """Decompress .aec files into images (PNG by default)."""
    inputs, output = files.positional_output(inputs, output, out_dir,
                                             lambda a, b: _is_aec(a) and not _is_aec(b) and files.is_image_name(b))
    fmt = _output_format(output)
    if quality is not None and fmt not in LOSSY:
        raise click.UsageError(f"-q sets the quality of JPEG, WebP and AVIF outputs, not of {fmt}")
    if ray_address:
        from .. import ray_job

        return ray_job.run("decode", inputs, out_dir, ray_address, output=output, jobs=jobs, force=force,
                           quiet=quiet, max_pixels=max_pixels, model=model, device=device)
    pairs = files.plan(inputs, output, out_dir, force, lambda p: p.with_suffix(".png").name)

    from .. import codec

    notice = files.notifier(quiet)

    def one(pair: tuple[str, str]) -> files.Done:
        src, dst = pair
        start = time.perf_counter()
        raw = read_input(src)
        try:
            image = codec.decode(raw, model=model, device=device, max_pixels=max_pixels)
        except codec.DecodeError as e:
            raise ValueError(f"{src}: {e}") from None
        data = image_bytes(image, fmt, quality or DEFAULT_OUTPUT_QUALITY, lambda s: notice(f"{dst}: {s}"))
        files.emit(dst, data, force)
        line = f"{src} -> {dst}: {image.width}x{image.height} {image.mode}, {time.perf_counter() - start:.2f} s"
        return files.Done(line, len(raw), len(data), dst != "-")

    files.for_each(pairs, one, jobs, quiet, "decoding")


@click.command(epilog=files.EXIT_STATUS)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output image ('-' for stdout). Default: NAME-denoised.png beside the input.")
@click.option("--level", type=files.NoiseLevel(), default="auto", show_default=True,
              help="Noise level to remove, 0..50 on the 0..255 scale, or 'auto' to estimate it.")
@click.option("-q", "--quality", type=click.FloatRange(1, 100), default=90, show_default=True,
              help="Quality of the in-memory coding; high keeps detail, low smooths more.")
@files.file_options
@files.one_line_errors
def denoise(inputs, output, level, quality, out_dir, jobs, max_pixels, model, device, force, quiet):
    """Remove noise from photos: encode with --denoise and decode, in memory.

    \b
      aecompress denoise noisy.png                 # -> noisy-denoised.png
      aecompress denoise scan.tif --level 30 -o clean.png
    """
    fmt = _output_format(output)
    pairs = files.plan(inputs, output, out_dir, force, lambda p: f"{p.stem}-denoised.png")

    from .. import codec, zoo

    m = zoo.load(model)
    notice = files.notifier(quiet)

    def one(pair: tuple[str, str]) -> files.Done:
        src, dst = pair
        start = time.perf_counter()
        raw, image = read_input_image(src, max_pixels, notice)
        removed = codec.noise_level(m, codec.prepare(image).rgb, level)
        if removed:
            clean = codec.decode(codec.encode(image, quality, model=m, device=device, denoise=removed),
                                 model=m, device=device)
        else:
            clean = image  # nothing to remove: the pixels stay as they are
        data = image_bytes(clean, fmt, notice=lambda s: notice(f"{dst}: {s}"))
        files.emit(dst, data, force)
        line = (f"{src} -> {dst}: " + (f"noise level {removed:g} removed" if removed else "no noise to remove")
                + f", {time.perf_counter() - start:.2f} s")
        return files.Done(line, len(raw), len(data), dst != "-")

    files.for_each(pairs, one, jobs, quiet, "denoising")


