"""The plumbing every many-files command shares: options, outputs checked before any work,
atomic writes, one-line errors, progress and a summary over the inputs.

Nothing here imports torch, so that `aecompress --help` and `info` start at once.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from .image import writable_formats, write_atomic

PROGRESS_AFTER_S = 3.0  # work on one file that takes longer shows a spinner on a terminal
EXIT_STATUS = ("Exit status: 0 every file done; 1 a file failed (unreadable or damaged input, output existing "
               "or not writable; the other files are still done); 2 a usage error (options, output name); "
               "130 interrupted.")

DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu",
                      show_default=True, help="Where the float transforms run.")
FORCE = click.option("-f", "--force", is_flag=True, help="Overwrite existing output files (never an input).")
OUT_DIR = click.option("-d", "--out-dir", type=click.Path(file_okay=False), help="Write outputs into this folder.")
JOBS = click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
                    help="Files processed in parallel.")
MAX_PIXELS = click.option("--max-pixels", type=click.IntRange(1), default=2**28, show_default=True,
                          help="Refuse images (and .aec files) declaring more pixels than this.")
MODEL = click.option("--model", default=None, help="Model name from weights/manifest.json or a .pt file "
                     "(default: the manifest's default; decode reads it from the file).")
QUIET = click.option("-Q", "--quiet", is_flag=True, help="Print errors only: no line per file, notice or summary.")


class NoiseLevel(click.ParamType):
    """--denoise: 'auto' or a noise level (standard deviation on the 0..255 scale)."""

    name = "auto|LEVEL"

    def convert(self, value, param, ctx):
        from .denoise import MAX_NOISE

        if value == "auto" or isinstance(value, float):
            return value
        try:
            level = float(value)
        except ValueError:
            self.fail(f"'{value}' is neither 'auto' nor a number", param, ctx)
        if not 0 <= level <= MAX_NOISE:
            self.fail(f"{level:g} is outside 0..{MAX_NOISE:g}", param, ctx)
        return level


DENOISE = click.option("--denoise", type=NoiseLevel(), is_flag=False, flag_value="auto", default=None,
                       help="Remove sensor noise or grain while encoding: 'auto' (the default when "
                            "given alone) estimates its level, or give the level, 0..50 on the 0..255 "
                            "scale (e.g. --denoise 25). Smaller files, cleaner pictures.")


def file_options(fn):
    """The options every many-files command shares: -d, -j, --max-pixels, --model, --device, -f, -Q."""
    for option in reversed((OUT_DIR, JOBS, MAX_PIXELS, MODEL, DEVICE, FORCE, QUIET)):
        fn = option(fn)
    return fn


class Failure(Exception):
    """Some files failed; each was reported on its own line already."""


def one_line_errors(fn):
    """Expected failures become one line, 'aecompress: error: ...', and the exit status of
    EXIT_STATUS: 1 for a file, 2 for a usage error found by the command; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Failure:
            sys.exit(1)
        except click.UsageError as e:
            click.echo(f"aecompress: error: {e.format_message()}", err=True)
            sys.exit(2)
        except (ValueError, OSError, LookupError) as e:
            click.echo(f"aecompress: error: {e}", err=True)
            sys.exit(1)
        except MemoryError:
            click.echo("aecompress: error: out of memory", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("aecompress: interrupted", err=True)
            sys.exit(130)

    return wrapper


def notifier(quiet: bool) -> Callable[[str], None]:
    """Where notices (a 16-bit image reduced, alpha dropped, ...) go: stderr, unless --quiet."""
    return (lambda message: None) if quiet else (lambda message: click.echo(f"aecompress: note: {message}", err=True))


def positional_output(inputs: Sequence[str], output: str | None, out_dir: str | None,
                      is_output: Callable[[str, str], bool]) -> tuple[list[str], str | None]:
    """`aecompress encode in.png out.aec`, as cjxl and avifenc take it: with two positionals
    and no -o or -d, the second is the output when is_output(first, second) says so."""
    if len(inputs) == 2 and output is None and out_dir is None and is_output(*inputs):
        return [inputs[0]], inputs[1]
    return list(inputs), output


def is_image_name(path: str) -> bool:
    return Path(path).suffix.lower() in writable_formats()


def plan(inputs: Sequence[str], output: str | None, out_dir: str | None, force: bool,
         name: Callable[[Path], str]) -> list[tuple[str, str]]:
    """(input, output) pairs: -o, else -d/name(input), else name(input) beside it ('-' for
    stdin). Every output is checked before any work, so that nothing fails after a long encode:
    its folder exists and takes files, no two inputs share it, it is no input (even with -f),
    and it does not exist unless force."""
    if output and len(inputs) > 1:
        raise click.UsageError("-o takes one input; give one file or none (or -d for a folder)")
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    pairs = [(src, output or ("-" if src == "-" else str(Path(out_dir or Path(src).parent) / name(Path(src)))))
             for src in inputs]
    inodes = {_inode(src) for src in inputs if src != "-"} - {None}
    writers: dict[str, str] = {}
    for src, dst in pairs:
        if dst == "-":
            continue
        other = writers.setdefault(os.path.realpath(dst), src)
        if other != src:
            raise click.UsageError(f"{other} and {src} would both be written to {dst}")
        _check_output(Path(dst), force, inodes)
    return pairs


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _check_output(path: Path, force: bool, inputs: set) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory")
    if path.exists():
        if _inode(str(path)) in inputs:
            raise ValueError(f"{path} is an input: aecompress never overwrites its inputs, even with -f")
        if not force:
            raise FileExistsError(f"{path} exists (use -f to overwrite)")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    try:  # the way write_atomic will write it
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror}") from None


def emit(path: str, data: bytes, force: bool) -> None:
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        write_atomic(Path(path), data, force)


@dataclass(frozen=True)
class Done:
    """One file's result: its line, the bytes read and written (None: nothing written), and
    whether the line may go to stdout (not while stdout carries the data)."""

    line: str
    bytes_in: int
    bytes_out: int | None
    to_stdout: bool = True


def for_each(files: Sequence, action: Callable[..., Done], jobs: int = 1, quiet: bool = False,
             label: str = "") -> None:
    """Run action on every file, `jobs` at a time: a progress bar and a summary line for
    several files, a spinner for one that takes long; each failure is reported on one line
    and the command fails at the end if any did."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    def guarded(f) -> Done | str:
        try:
            with spinner(f"{label} {f[0] if isinstance(f, tuple) else f}", quiet or len(files) > 1):
                return action(f)
        except (ValueError, OSError, LookupError) as e:
            return f"aecompress: error: {e}"

    start, done, failed = time.perf_counter(), [], 0
    with tqdm(total=len(files), unit="file", disable=quiet or len(files) < 2, file=sys.stderr) as bar:
        # One job runs on the main thread: torch's thread pool is set up there, a worker
        # thread would pay for setting up another one.
        pool = ThreadPoolExecutor(jobs) if jobs > 1 and len(files) > 1 else None
        for result in (pool.map if pool else map)(guarded, files):
            if isinstance(result, str):
                failed += 1
                bar.write(result, file=sys.stderr)
            else:
                done.append(result)
                if not quiet:
                    bar.write(result.line, file=sys.stdout if result.to_stdout else sys.stderr)
            bar.update()
        if pool:
            pool.shutdown()
    if len(files) > 1 and not quiet:
        click.echo(summary(len(files), done, failed, time.perf_counter() - start), err=True)
    if failed:
        raise Failure()


def summary(count: int, done: Sequence[Done], failed: int, seconds: float) -> str:
    """'3 files, 2 done, 1 failed: 1234567 bytes in, 45678 bytes out (3.70%), 4.20 s'."""
    line = f"{count} files, {len(done)} done" + (f", {failed} failed" if failed else "")
    bytes_in = sum(d.bytes_in for d in done)
    line += f": {bytes_in} bytes in"
    if any(d.bytes_out is not None for d in done):
        bytes_out = sum(d.bytes_out or 0 for d in done)
        line += f", {bytes_out} bytes out" + (f" ({100 * bytes_out / bytes_in:.2f}%)" if bytes_in else "")
    return line + f", {seconds:.2f} s"


def _is_terminal(stream) -> bool:
    return stream.isatty()


@contextlib.contextmanager
def spinner(label: str, off: bool = False):
    """Work on one file that takes longer than PROGRESS_AFTER_S shows it is alive: a line on
    stderr, a terminal only, counting the seconds; erased when the work ends."""
    stream = sys.stderr
    if off or not _is_terminal(stream):
        yield
        return
    done, start = threading.Event(), time.monotonic()

    def show() -> None:
        if done.wait(PROGRESS_AFTER_S):
            return
        for frame in itertools.cycle("|/-\\"):
            stream.write(f"\r{label} {frame} {time.monotonic() - start:.0f} s")
            stream.flush()
            if done.wait(0.25):
                break
        stream.write("\r\033[K")
        stream.flush()

    thread = threading.Thread(target=show, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
