"""train, bench and compare: the commands that need the [train] or [bench] extras."""

from __future__ import annotations

import time

import click

from .. import files
from ..config import DEFAULT_QUALITY
from ..image import read_input_image
from .code import POSITIVE


@click.command()
@click.option("--data", default="../shared/data/train", show_default=True, help="Folder of training images.")
@click.option("--out", default="runs/main", show_default=True, help="Run folder (checkpoint, logs).")
@click.option("--steps", type=int, help="Total optimizer steps.")
@click.option("--batch", type=int, help="Crops per step (per process under torchrun).")
@click.option("--crop", type=int, help="Crop size in pixels.")
@click.option("--lr", type=float, help="Peak learning rate.")
@click.option("--min-downscale", type=click.FloatRange(0, 1, min_open=True), help="Crops are taken "
              "from the image scaled by a random factor in [this, 1]: 1 keeps full resolution.  [default: 0.4]")
@click.option("--channels", type=(int, int), help="N M: widths of z and the hyper transforms (of g_a and g_s "
              "too, unless --width) and of y.")
@click.option("--width", type=click.IntRange(min=1), help="Channels of g_a and g_s. With --init and a wider "
              "width, the transforms grow (the new channels start unread; see train.widen_transforms).")
@click.option("--lambdas", type=(float, float), help="Rate-distortion trade-offs at quality 1 and 100.")
@click.option("--quality-power", type=click.FloatRange(min=0, min_open=True),
              help="Draw the quality axis as u**P, u uniform: below 1, high qualities more often.")
@click.option("--denoise", is_flag=True, help="Also learn to remove noise (encode --denoise).")
@click.option("--init", help="Start from this checkpoint or weights file (its model, a new optimizer and "
              "schedule); with a larger M in --channels, its latent grows (the decoder starts without "
              "reading the new channels; see train.widen_latent).")
@click.option("--finetune-steps", type=click.IntRange(min=0),
              help="Last steps with g_a and g_s frozen, the entropy path learning on rounded z (the "
              "integer path it will be coded with).  [default: 1500]")
@click.option("--uncharged-steps", type=click.IntRange(min=0),
              help="With --init and a larger M: the new channels cost no bits for this many steps, so "
              "they learn to carry information before they pay for it.")
@click.option("--analysis-width", type=click.IntRange(min=1), help="Channels of g_a alone: a wider encoder for "
              "the same decoder. With --init it grows g_a as --width does, and with --encoder-only the "
              "decoder stays bit-identical.")
@click.option("--context", type=click.IntRange(min=1), help="Add a checkerboard context model with this many "
              "hidden channels: y is coded in two passes, the second with tables sharpened by the first.")
@click.option("--context-slices", type=click.IntRange(min=1), help="Code the anchors of the context model in "
              "this many channel groups, each with tables sharpened by the groups before it (M must "
              "split evenly).")
@click.option("--non-anchor-slices", type=click.IntRange(min=1), help="Code the other positions of the "
              "context model in this many channel groups, likewise (M must split evenly).")
@click.option("--context-window", type=click.Choice(["3", "5"]), help="The other positions of the context "
              "model read the anchors of a 3x3 window (their four neighbours) or of a 5x5 one (twelve); with "
              "--init, a trained 3x3 model grows to 5x5 starting exactly where it was.")
@click.option("--context-only", is_flag=True, help="Train only the context model, on rates alone; the "
              "rest of an --init model stays exactly as it is (fast: g_s is never run).")
@click.option("--latent-reuse", type=click.IntRange(min=1), help="With --context-only: encode each crop "
              "once and draw its latents this many times on average (from a ring of recent ones), "
              "instead of running g_a, most of a step's cost, on every crop.  [default: 1]")
@click.option("--quality-conditioned", is_flag=True, help="Condition g_a on the quality too (FiLM per gain "
              "anchor, starting at none): the encoder makes other latents for each rate; the decoder is "
              "unchanged.")
@click.option("--encoder-only", is_flag=True, help="Train only the encoder side (g_a, h_a, gains) of an "
              "--init model: its decoder stays bit-identical, and g_a learns the entropy model as it now is. "
              "With --lambdas, the decoder's inverse gains learn too (each quality means another trade-off).")
@click.option("--decoder-only", is_flag=True, help="Train only g_s and the inverse gains of an --init model: "
              "every file's bits stay exactly as they were, only the pixels improve. With --width, g_s grows "
              "first (a new decoder: a new model name).")
@click.option("--bf16/--fp32", "autocast", default=None,
              help="Transforms in bf16 autocast or fp32 (the entropy model is always fp32). "
              "Default: bf16 on CUDA and on CPUs with native bf16 (AVX-512 BF16, AMX), where it is faster.")
@click.option("--eval-dir", help="Held-out photos evaluated every --eval-every steps (default: none).")
@click.option("--eval-every", type=int, help="Steps between evaluations (0: never).")
@click.option("--smoke", is_flag=True, help="A tiny model for a few steps: checks the setup in seconds.")
@click.option("--fresh", is_flag=True, help="Ignore an existing checkpoint in --out.")
@click.option("--export", "export_name", help="After training, write weights/<NAME>.pt and list it.")
@files.one_line_errors
def train(data, out, steps, batch, crop, lr, min_downscale, finetune_steps, channels, width, analysis_width, lambdas,
          quality_power, denoise, init, uncharged_steps, context, context_slices, non_anchor_slices, context_window,
          context_only, latent_reuse, quality_conditioned, encoder_only, decoder_only, autocast, eval_dir,
          eval_every, smoke, fresh, export_name):
    """Train a model (resumes from OUT/checkpoint.pt). Runs under torchrun for several processes.

    \b
      aecompress train --steps 40000 --export my-model
      aecompress train --init weights/MODEL.pt --denoise --out runs/dn
      aecompress train --init weights/MODEL.pt --channels 64 192 --uncharged-steps 2000 --out runs/wide
      aecompress train --init weights/MODEL.pt --context 192 --context-only --latent-reuse 4 --out runs/ctx
      aecompress train --init weights/MODEL.pt --analysis-width 192 --encoder-only --out runs/enc
      aecompress train --init weights/MODEL.pt --width 128 --decoder-only --out runs/dec
      torchrun --nproc-per-node 8 -m aecompress train --batch 16
    """
    from dataclasses import replace

    from ..extras import require

    require("torch", "train", "aecompress train")
    from .. import train as training
    from ..model import ModelConfig

    cfg = training.TrainConfig.smoke() if smoke else training.TrainConfig()
    overrides = {"data": data, "out": out, "steps": steps, "batch": batch, "crop": crop, "lr": lr,
                 "min_downscale": min_downscale, "finetune": finetune_steps, "quality_power": quality_power,
                 "autocast": autocast, "eval_dir": eval_dir, "eval_every": eval_every, "init": init}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    source_model = training.load_source(init)[1] if init else None
    if source_model is not None:  # the source's model, unless the options below change it
        cfg = replace(cfg, model=source_model)
    options = {"denoise": denoise, "N": channels and channels[0], "M": channels and channels[1], "width": width,
               "analysis_width": analysis_width, "lambda_min": lambdas and lambdas[0],
               "lambda_max": lambdas and lambdas[1], "context": context, "context_slices": context_slices,
               "non_anchor_slices": non_anchor_slices, "context_window": context_window and int(context_window),
               "quality_conditioned": quality_conditioned}
    model_overrides = {k: v for k, v in options.items() if v}  # what the options change in the model
    if model_overrides:
        cfg = replace(cfg, model=ModelConfig(**{**cfg.model.to_dict(), **model_overrides}))
    shaped = (cfg.model.context_slices, cfg.model.non_anchor_slices, cfg.model.context_window) != (1, 1, 3)
    if shaped and not cfg.model.context:
        raise click.UsageError("--context-slices, --non-anchor-slices and --context-window shape a context "
                               "model: add --context")
    if uncharged_steps:
        if source_model is None:
            raise click.UsageError("--uncharged-steps needs --init (the channels beyond the source's M)")
        cfg = replace(cfg, uncharged_from=source_model.M, uncharged_steps=uncharged_steps)
    if context_only:
        if source_model is None or model_overrides.keys() - {"context", "context_slices", "non_anchor_slices",
                                                           "context_window"}:
            raise click.UsageError("--context-only trains a context model for an --init model, which it "
                                   "leaves as it is: no --channels, --width, --lambdas or --denoise")
        if not cfg.model.context:
            raise click.UsageError("--context-only needs --context (or an --init model that has one)")
        cfg = replace(cfg, context_only=True, latent_reuse=latent_reuse or cfg.latent_reuse)
    elif latent_reuse and latent_reuse > 1:
        raise click.UsageError("--latent-reuse needs --context-only: stored latents hold only while g_a does not learn")
    if encoder_only:
        encoder = {"analysis_width", "quality_conditioned", "lambda_min", "lambda_max"}
        if source_model is None or model_overrides.keys() - encoder or context_only:
            raise click.UsageError("--encoder-only trains the encoder of an --init model for the decoder it "
                                   "has: no --context-only, --context, --channels, --width or --denoise "
                                   "(--analysis-width, --quality-conditioned and --lambdas may change the encoder)")
        cfg = replace(cfg, encoder_only=True, inverse_gains=bool(lambdas))
    if decoder_only:
        if source_model is None or model_overrides.keys() - {"width"} or context_only or encoder_only:
            raise click.UsageError("--decoder-only trains the decoder of an --init model for the bits it "
                                   "codes: only --width may change the model")
        cfg = replace(cfg, decoder_only=True)
    net = training.train(cfg, resume=not fresh)
    if export_name:
        path = training.export_run(net, cfg, export_name)
        click.echo(f"exported {path} and listed it in weights/manifest.json")


@click.command()
@click.argument("data_dir", default="../shared/data/kodak")
@files.MODEL
@click.option("--qualities", help="aecompress qualities, comma-separated (default: bench.QUALITIES, "
              "nine from 1 to 100).")
@click.option("--out", help="Folder for results/, plots and report.md; `--out benchmarks` (or --record) rewrites "
              "the committed ones and README's section.  [default: a new folder in the temporary directory]")
@click.option("--quick", is_flag=True, help="3 images, 3 qualities, fewer settings, no repeats: a smoke run.")
@click.option("--codecs", help="Only these codecs, comma-separated (default: all).")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="torch/AVIF threads.")
@click.option("--keep-files", help="Keep every encoded file in this folder.")
@click.option("--record", is_flag=True, help="Write the model's measured figures into weights/manifest.json "
              "(and, without --out, the results into benchmarks/).")
@files.one_line_errors
def bench(data_dir, model, qualities, out, quick, codecs, threads, keep_files, record):
    """Rate-distortion, speed, memory and sparsity benchmark -> JSON, plots and report.md."""
    import shutil
    import tempfile

    from .. import bench as benchmark

    try:
        qs = list(benchmark.QUALITIES) if qualities is None else [float(q) for q in qualities.split(",")]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {qualities}", param_hint="--qualities") from None
    if not qs or any(not 1 <= q <= 100 for q in qs):
        raise click.BadParameter("qualities must be in 1..100", param_hint="--qualities")
    fresh = out is None and not record  # the committed results change only when asked to
    out = tempfile.mkdtemp(prefix="aecompress-bench-") if fresh else out or "benchmarks"
    click.echo(f"aecompress bench: writing to {out}", err=True)
    try:
        s = benchmark.run(data_dir, out, model, qs, quick, codecs.split(",") if codecs else None, threads,
                          keep_files=keep_files, record=record, progress=lambda line: click.echo(line, err=True))
    except BaseException:
        if fresh:
            shutil.rmtree(out, ignore_errors=True)
        raise
    bd = "n/a" if s.bd_rate_vs_jpeg is None else f"{s.bd_rate_vs_jpeg:+.1f}%"
    click.echo(f"{s.images} images, {len(s.codecs)} codecs -> {s.results_dir}; aecompress BD-rate vs JPEG {bd}; "
               f"report {s.report}")


@click.command(epilog=files.EXIT_STATUS)
@click.argument("input")
@click.option("-o", "--output", help="The HTML page ('-' for stdout). Default: NAME-compare.html beside the input.")
@click.option("-q", "--quality", type=click.FloatRange(1, 100),
              help=f"aecompress quality, 1..100.  [default: {DEFAULT_QUALITY}]")
@click.option("--size", type=click.IntRange(1),
              help="aecompress at the highest quality whose file fits this many bytes.")
@click.option("--bpp", type=POSITIVE, help="aecompress at the quality that gives this many bits per pixel.")
@files.MAX_PIXELS
@files.MODEL
@files.FORCE
@files.QUIET
@files.one_line_errors
def compare(input, output, quality, size, bpp, max_pixels, model, force, quiet):
    """One HTML page: the image beside aecompress, JPEG, WebP and AVIF at the same file size.

    \b
      aecompress compare photo.png -o compare.html    # aecompress at -q 60, the others at its size
      aecompress compare photo.png --size 50000       # or a byte budget (or --bpp 0.5)

    Each of JPEG, WebP and AVIF at its highest quality whose file fits aecompress's. The page needs
    no network or server: a split view between any two, Fit, 1:1 and 4x with synced panning, and
    bytes, bpp, PSNR, MS-SSIM and times. Photos over 2 MP show a downscaled whole and four
    512x512 crops at full resolution.
    """
    rates = [name for name, v in (("-q", quality), ("--size", size), ("--bpp", bpp)) if v is not None]
    if len(rates) > 1:
        raise click.UsageError(f"{' and '.join(rates)} both set aecompress's rate: give one of them")
    pairs = files.plan([input], output, None, force, lambda p: f"{p.stem}-compare.html")

    from pathlib import Path

    from .. import compare as comparison
    from .. import zoo

    m = zoo.load(model)
    notice = files.notifier(quiet)

    def one(pair: tuple[str, str]) -> files.Done:
        src, dst = pair
        start = time.perf_counter()
        raw, image = read_input_image(src, max_pixels, notice)
        if "A" in image.mode:
            notice(f"{src}: the page compares RGB: transparency dropped")
        page = comparison.build(image, "stdin" if src == "-" else Path(src).name, len(raw), m,
                                quality, size, bpp)
        data = page.html.encode()
        files.emit(dst, data, force)
        settings = ", ".join(f"{c.key} {c.setting} {c.nbytes} B" for c in page.coded)
        line = f"{src} -> {dst}: {settings}; page {len(data) / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s"
        return files.Done(line, len(raw), len(data), dst != "-")

    files.for_each(pairs, one, 1, quiet, "comparing")
