"""The plumbing every many-files command shares: options, output paths, atomic writes,
one-line errors and a progress bar over the inputs."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from . import codec
from .image import write_atomic

DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
                      show_default=True, help="Where the float transforms run.")
FORCE = click.option("-f", "--force", is_flag=True, help="Overwrite existing output files.")
OUT_DIR = click.option("-d", "--out-dir", type=click.Path(file_okay=False), help="Write outputs into this folder.")
JOBS = click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
                    help="Files processed in parallel.")
MAX_PIXELS = click.option("--max-pixels", type=click.IntRange(1), default=2**28, show_default=True,
                          help="Refuse images (and .aec files) declaring more pixels than this.")
MODEL = click.option("--model", default=None, help="Model name from weights/manifest.json or a .pt file "
                     "(default: the manifest's default; decode reads it from the file).")


class NoiseLevel(click.ParamType):
    """--denoise: 'auto' or a noise level (standard deviation on the 0..255 scale)."""

    name = "auto|LEVEL"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, float):
            return value
        try:
            level = float(value)
        except ValueError:
            self.fail(f"'{value}' is neither 'auto' nor a number", param, ctx)
        if not 0 <= level <= codec.MAX_NOISE:
            self.fail(f"{level:g} is outside 0..{codec.MAX_NOISE:g}", param, ctx)
        return level


DENOISE = click.option("--denoise", type=NoiseLevel(), is_flag=False, flag_value="auto", default=None,
                       help="Remove sensor noise or grain while encoding: 'auto' (the default when "
                            "given alone) estimates its level, or give the level, 0..50 on the 0..255 "
                            "scale (e.g. --denoise 25). Smaller files, cleaner pictures.")


def file_options(fn):
    """The options every many-files command shares: -d, -j, --max-pixels, --model, --device, -f."""
    for option in reversed((OUT_DIR, JOBS, MAX_PIXELS, MODEL, DEVICE, FORCE)):
        fn = option(fn)
    return fn


class Failure(Exception):
    pass


def one_line_errors(fn):
    """Turn expected failures into 'aecompress: error: ...' and exit status 1, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Failure:
            sys.exit(1)
        except (ValueError, OSError, LookupError) as e:
            click.echo(f"aecompress: error: {e}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("aecompress: interrupted", err=True)
            sys.exit(130)

    return wrapper


def notice(message: str) -> None:
    click.echo(f"aecompress: note: {message}", err=True)


def output_path(src: str, out: str | None, suffix: str, out_dir: str | None, force: bool) -> str:
    """Where src's result goes: -o, else -d/NAME.suffix, else beside src; never an existing file
    unless force."""
    if out:
        dst = out
    elif src == "-":
        dst = "-"
    elif out_dir:
        dst = str(Path(out_dir) / Path(src).with_suffix(suffix).name)
    else:
        dst = str(Path(src).with_suffix(suffix))
    if dst != "-" and Path(dst).exists() and not force:
        raise FileExistsError(f"{dst} exists (use -f to overwrite)")
    return dst


def check_outputs(inputs, output: str | None, out_dir: str | None) -> None:
    if output and len(inputs) > 1:
        raise click.UsageError("-o takes one input; give one file or none")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)


def emit(path: str, data: bytes, force: bool) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomic(Path(path), data, force)


def for_each(files, action, jobs: int = 1) -> None:
    """Run action (returning a summary line and whether it may go to stdout) on every file, `jobs` at a time, with a progress bar
    for several files; report each failure on one line and fail at the end if any did."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def guarded(f) -> tuple[bool, str, bool]:
        try:
            line, to_stdout = action(f)
            return True, line, not to_stdout
        except (ValueError, OSError, LookupError) as e:
            return False, f"aecompress: error: {e}", True

    failed = 0
    with tqdm(total=len(files), unit="file", disable=len(files) < 2, file=sys.stderr) as bar:
        # One job runs on the main thread: torch's thread pool is set up there, a worker
        # thread would pay for setting up another one.
        pool = ThreadPoolExecutor(jobs) if jobs > 1 and len(files) > 1 else None
        for ok, line, err in (pool.map if pool else map)(guarded, files):
            failed += not ok
            bar.write(line, file=sys.stderr if err else sys.stdout)
            bar.update()
        if pool:
            pool.shutdown()
    if len(files) > 1:
        click.echo(f"{len(files) - failed} of {len(files)} files done", err=True)
    if failed:
        raise Failure()
