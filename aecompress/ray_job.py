"""The driver of `aecompress encode|decode INPUTS -d OUT --ray [ADDRESS]`: list the inputs, skip
what OUT/manifest.jsonl holds as done, code the rest with an actor pool of ray.Encoder or
ray.Decoder, and write each result to the terminal, OUT's journal and, at the end, the manifest.

Ray Data does all the scheduling: it restarts a killed actor and retries its batch; the journal
keeps what a stopped job finished, so a second run skips it too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

import click

from . import extras, files
from .ray import FIELDS, TMP_DIR, Decoder, Encoder, output_name, publish

MANIFEST = "manifest.jsonl"


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


def run_on(address: str, coder: type[Encoder | Decoder], kwargs: dict, todo: list[tuple[str, str]], out: Path,
           done: dict, jobs: int = 1, quiet: bool = False) -> None:
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
        publish(out, MANIFEST, "".join(json.dumps(done[k]) + "\n" for k in sorted(done)).encode())
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
