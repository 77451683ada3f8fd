"""Whole collections on a Ray cluster: `encode/decode ... -d OUT --ray [ADDRESS]`, on Ray Data.

    folders, globs, fsspec URLs --list--> rows (path, name)
      --map_batches(Encoder | Decoder, an actor pool: the model loads once per actor)-->
      OUT/name (a temporary file in OUT/.aecompress-tmp, then a rename) and a row per file
      --driver--> OUT/manifest.jsonl: path, output, bytes in/out, bpp, quality, psnr, status, error

Each file is coded by the functions `aecompress encode` and `decode` use, with numpy on the CPU,
so a file made on the cluster is byte-identical to one made on one machine. A bad file becomes
a row with its error; Ray restarts a killed actor and retries its batch; a second run skips what
the manifest holds as done. Ray Data does all the scheduling; in a pipeline of one's own,
`ds.map_batches(aecompress.ray.Encoder, ...)` (README, "Past one machine").
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import click

from . import extras, files
from .image import DEFAULT_MAX_PIXELS, DEFAULT_OUTPUT_QUALITY, image_bytes, read_image

MANIFEST = "manifest.jsonl"
TMP_DIR = ".aecompress-tmp"  # in OUT: temporary files, and the journal of the job that runs
FIELDS = ("path", "output", "bytes_in", "bytes_out", "width", "height", "bpp", "quality", "psnr",
          "status", "error", "notes", "seconds")
_UMASK = os.umask(0o022)  # outputs get the mode open() would give them, as image.write_atomic's do
os.umask(_UMASK)


class _Coder:
    """What Encoder and Decoder share. A batch (a pandas DataFrame or a dict of numpy arrays)
    with a `bytes` or a `path` column (a local path or fsspec URL) comes in; one row per file
    goes out, in the same format, a failure as a row with its one-line error. With out_dir each
    output is written to out_dir/name (the `name` column, else the input's name) and `output`
    holds the name; without, the `column` column holds its bytes."""

    column = suffix = ""

    def __init__(self, out_dir: str | None):
        self.out_dir = Path(out_dir) if out_dir else None

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        raise NotImplementedError

    def __call__(self, batch):
        import pandas as pd

        table = batch if isinstance(batch, pd.DataFrame) else pd.DataFrame(dict(batch))
        rows = pd.DataFrame([self._one(row) for row in table.to_dict("records")])
        return rows if isinstance(batch, pd.DataFrame) else {k: rows[k].to_numpy() for k in rows}

    def _one(self, row: dict) -> dict:
        start, path = time.perf_counter(), str(row.get("path") or "")
        notes: list[str] = []
        result = dict.fromkeys(FIELDS) | {"path": path, "status": "ok"}
        if self.out_dir is None:
            result[self.column] = None
        try:
            raw = bytes(row["bytes"]) if row.get("bytes") is not None else _read(path)
            result["bytes_in"] = len(raw)
            data, fields = self.code(raw, path or "image", notes.append)
            result.update(fields, bytes_out=len(data))
            if self.out_dir is None:
                result[self.column] = data
            else:
                name = str(row.get("name") or output_name(posixpath.basename(path), self.suffix))
                _publish(self.out_dir, name, data)
                result["output"] = name
        except Exception as e:  # a bad file is a row of the manifest, never the end of the job
            message = (str(e).splitlines() or [""])[0]
            known = isinstance(e, (ValueError, OSError, LookupError))
            result.update(status="error", output=None, error=message if known else f"{type(e).__name__}: {message}")
        result.update(notes="; ".join(notes) or None, seconds=round(time.perf_counter() - start, 3))
        return result


class Encoder(_Coder):
    """Images (file bytes or paths) -> .aec files, exactly as `aecompress encode` makes them.
    The command's options: quality or target (("size", 20000), ("bpp", 0.5) or ("psnr", 34)),
    effort, denoise, strip, verify (fills psnr), model, device, max_pixels."""

    column, suffix = "aec", ".aec"

    def __init__(self, quality: float | None = None, target: tuple[str, float] | None = None, effort: int = 0,
                 denoise: float | str | None = None, strip: bool = False, verify: bool = False,
                 model: str | None = None, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 out_dir: str | None = None):
        from . import ratecontrol, zoo

        super().__init__(out_dir)
        self.model = zoo.load(model)
        self.quality, self.effort, self.denoise, self.strip, self.verify = quality, effort, denoise, strip, verify
        self.target = ratecontrol.Target(*target) if target else None
        self.device, self.max_pixels = device, max_pixels

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        from . import codec, ratecontrol

        image = read_image(raw, name, self.max_pixels, notice=notice)
        if self.strip:
            image.info.pop("icc_profile", None)
            image.info.pop("exif", None)
        if self.target:
            result = ratecontrol.encode_to_target(image, self.target, self.model, self.device, self.denoise)
            if not result.reached:
                raise ValueError(f"{name}: --target-{self.target.kind} {self.target.value:g} is out of reach "
                                 f"(nearest at quality {result.quality:g}: {len(result.data)} bytes)")
            data, quality = result.data, result.quality
        else:
            quality = codec.DEFAULT_QUALITY if self.quality is None else self.quality
            data = codec.encode(image, quality, model=self.model, device=self.device, denoise=self.denoise,
                                effort=self.effort)
        w, h = image.size
        fields = {"width": w, "height": h, "bpp": round(len(data) * 8 / (w * h), 5),
                  "quality": round(float(quality), 2)}
        if self.verify:  # as encode --verify: the decoded file against the image encoded
            import numpy as np

            from .metrics import psnr

            mode = image.mode if image.mode in ("L", "RGB") else "RGB"
            back = codec.decode(data, model=self.model, device=self.device)
            fields["psnr"] = round(psnr(np.asarray(image.convert(mode)), np.asarray(back.convert(mode))), 3)
        return data, fields


class Decoder(_Coder):
    """.aec files (bytes or paths) -> images in `format` (PNG), exactly as `aecompress decode`
    writes them; quality: that of a JPEG, WebP or AVIF output."""

    column, suffix = "image", ".png"

    def __init__(self, format: str = "PNG", quality: int | None = None, model: str | None = None,
                 device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS, out_dir: str | None = None):
        from . import zoo

        super().__init__(out_dir)
        zoo.load(model or zoo.default_model_name())  # once per actor: zoo keeps it for the files
        self.format, self.quality, self.model, self.device, self.max_pixels = format, quality, model, device, max_pixels
        self.suffix = "." + format.lower()

    def code(self, raw: bytes, name: str, notice: Callable[[str], None]) -> tuple[bytes, dict]:
        from . import codec, container

        try:
            image = codec.decode(raw, model=self.model, device=self.device, max_pixels=self.max_pixels)
        except codec.DecodeError as e:
            raise ValueError(f"{name}: {e}") from None
        data = image_bytes(image, self.format, self.quality or DEFAULT_OUTPUT_QUALITY, notice)
        (w, h), quality = image.size, container.unpack(raw).header.quality
        return data, {"width": w, "height": h, "bpp": round(len(raw) * 8 / (w * h), 5), "quality": quality}


def _read(path: str) -> bytes:
    import fsspec

    if not path:
        raise ValueError("a row needs a 'bytes' or a 'path' column")
    with fsspec.open(path, "rb") as f:
        return f.read()


def _publish(out_dir: Path, name: str, data: bytes) -> None:
    """Write out_dir/name through a temporary file in out_dir/TMP_DIR and a rename: nothing
    half-written is ever visible in out_dir, and what a killed worker leaves is in one place."""
    path = out_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    (out_dir / TMP_DIR).mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".tmp", dir=out_dir / TMP_DIR)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def output_name(relative: str, suffix: str) -> str:
    return str(PurePosixPath(relative).with_suffix(suffix))


def list_inputs(inputs: list[str], wanted: set[str], skip: str = "") -> list[tuple[str, str]]:
    """(path, relative name) of every input file: a file, the files of a folder (all depths,
    with an extension in `wanted`) or a glob's; local paths or fsspec URLs (file://, s3://, ...).
    Names are relative to the folder or to the glob's part before its first wildcard, so that OUT
    mirrors the inputs; hidden files and those under `skip` (OUT itself) are left out."""
    import fsspec

    found = []
    for spec in inputs:
        fs, path = fsspec.core.url_to_fs(spec)
        parts = path.split("/")
        wild = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
        if wild is not None:
            root, matches = "/".join(parts[:wild]), [p for p in fs.glob(path) if fs.isfile(p)]
        elif fs.isdir(path):
            root, matches = path, [p for p in fs.find(path) if PurePosixPath(p).suffix.lower() in wanted]
        elif fs.isfile(path):
            root, matches = posixpath.dirname(path), [path]
        else:
            raise FileNotFoundError(f"cannot read {spec}: no such file, folder or match")
        local = "file" in fs.protocol
        for p in sorted(matches):
            relative = posixpath.relpath(p, root)
            hidden = any(part.startswith(".") for part in relative.split("/"))
            if not hidden and not (skip and p.startswith(skip + "/")):
                found.append((p if local else fs.unstrip_protocol(p), relative))
    return found


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """OUT/manifest.jsonl's rows by input path, then those a stopped job left in its journal."""
    rows: dict[str, dict] = {}
    for path in (out_dir / MANIFEST, out_dir / TMP_DIR / "journal.jsonl"):
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                row = json.loads(line)
            except ValueError:  # a journal's last line, cut short
                continue
            rows[row["path"]] = row
    return rows


def run(kind: str, inputs: list[str], out_dir: str | None, address: str, *, output: str | None, jobs: int,
        force: bool, quiet: bool, model: str | None, **options: Any) -> None:
    """`aecompress encode|decode INPUTS -d OUT --ray ADDRESS`: what OUT's manifest holds as done
    (its output still there) is skipped, the rest coded on the cluster (run_on). Outputs are
    checked as the local commands check them, before any work. options: Encoder's or Decoder's."""
    if output or not out_dir or "-" in inputs:
        raise click.UsageError("--ray reads files (not stdin) and writes into a folder: give -d OUT, not -o")
    if address != "auto" and ":" not in address:
        raise click.UsageError(f"--ray {address}: not a cluster address (auto, HOST:PORT or ray://HOST:PORT); "
                               "put --ray after the inputs, or give it an address")
    from PIL import Image

    Image.init()
    images = set(Image.registered_extensions()) - {".aec"}
    coder, wanted = (Encoder, images) if kind == "encode" else (Decoder, {".aec"})
    if model and Path(model).is_file():
        model = str(Path(model).resolve())  # where the workers find it (on a shared file system)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    done, todo = read_manifest(out), []
    writers: dict[str, str] = {}
    for path, relative in list_inputs(list(inputs), wanted, skip=str(out)):
        name = output_name(relative, coder.suffix)
        if writers.setdefault(name, path) != path:
            raise click.UsageError(f"{writers[name]} and {path} would both be written to {out / name}")
        row = done.get(path, {})
        if not force and row.get("status") == "ok" and row.get("output") == name and (out / name).exists():
            continue
        if os.path.realpath(path) == str(out / name):
            raise ValueError(f"{out / name} is an input: aecompress never overwrites its inputs, even with -f")
        if (out / name).exists() and not force:
            raise FileExistsError(f"{out / name} exists (use -f to overwrite)")
        todo.append((path, name))
    if not quiet and len(todo) < len(writers):
        click.echo(f"{len(writers) - len(todo)} of {len(writers)} files already done ({out / MANIFEST}): skipped",
                   err=True)
    if todo:
        run_on(address, coder, dict(options, model=model), todo, out, done, jobs, quiet)


def run_on(address: str, coder: type[_Coder], kwargs: dict, todo: list[tuple[str, str]], out: Path, done: dict,
           jobs: int = 1, quiet: bool = False) -> None:
    """Code (path, name) pairs into `out` with an actor pool of `coder` (`jobs` actors, else one
    per CPU of the cluster, or per GPU with device "cuda"), each result streamed into `done` (by
    path), OUT's journal and the terminal, then all of `done` into OUT/manifest.jsonl. Ray Data's
    actor pools restart a dead actor and retry the batches it held (max_restarts and
    max_task_retries -1, its defaults)."""
    from tqdm import tqdm

    ray = extras.require("ray", "ray", "--ray")
    extras.require("ray.data", "ray", "--ray")
    tmp = out / TMP_DIR
    tmp.mkdir(exist_ok=True)
    for stale in tmp.glob("*.tmp"):  # left by workers killed in an earlier job
        stale.unlink()
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # the driver's C++ log lines, on the terminal
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": ours show
    ray.data.DataContext.get_current().enable_progress_bars = False
    start, failed, stderr = time.perf_counter(), 0, click.get_text_stream("stderr")
    finished: list[files.Done] = []
    try:
        gpus = 1 if kwargs.get("device") == "cuda" else 0
        slots = jobs if jobs > 1 else int(ray.cluster_resources().get("GPU" if gpus else "CPU", 1))
        actors = max(1, min(len(todo), slots))
        per_block = max(1, min(16, len(todo) // (4 * actors)))  # a dead actor's retry redoes its blocks
        ds = ray.data.from_items([{"path": p, "name": n} for p, n in todo],
                                 override_num_blocks=math.ceil(len(todo) / per_block))
        ds = ds.map_batches(coder, fn_constructor_kwargs=dict(kwargs, out_dir=str(out)), batch_size=1,
                            batch_format="pandas", compute=ray.data.ActorPoolStrategy(size=actors),
                            num_cpus=1, num_gpus=gpus)
        with open(tmp / "journal.jsonl", "a") as journal, \
                tqdm(total=len(todo), unit="file", disable=quiet or len(todo) < 2, file=stderr) as bar:
            for row in ds.iter_rows():
                row = {k: _plain(row.get(k)) for k in FIELDS}
                journal.write(json.dumps(row) + "\n")
                journal.flush()
                done[row["path"]] = row
                if row["status"] == "ok":
                    finished.append(files.Done(_line(row, out), row["bytes_in"], row["bytes_out"]))
                    if not quiet:
                        bar.write(finished[-1].line)
                else:
                    failed += 1
                    bar.write(f"aecompress: error: {row['error']}", file=stderr)
                bar.update()
    finally:
        ray.shutdown()
        _publish(out, MANIFEST, "".join(json.dumps(done[k]) + "\n" for k in sorted(done)).encode())
        shutil.rmtree(tmp, ignore_errors=True)
    if len(todo) > 1 and not quiet:
        click.echo(files.summary(len(todo), finished, failed, time.perf_counter() - start), err=True)
    if failed:
        raise files.Failure()


def _plain(value: Any) -> Any:
    """Arrow's values as JSON takes them: numpy scalars as numbers, NaN as null."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _line(row: dict, out: Path) -> str:
    """The line the local command prints for a file."""
    line = f"{row['path']} -> {out / row['output']}: "
    if not row["output"].endswith(".aec"):
        return line + f"{row['width']}x{row['height']}, {row['seconds']:.2f} s"
    line += f"{row['bytes_out']} bytes, {row['bpp']:.4f} bpp, q {row['quality']:g}, {row['seconds']:.2f} s"
    return line + (f", PSNR {row['psnr']:.2f} dB" if row["psnr"] is not None else "")
