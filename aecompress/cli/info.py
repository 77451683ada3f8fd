"""info: what a .aec file holds, read from its header alone (no torch)."""

from __future__ import annotations

import json

import click

from .. import container, files
from ..image import read_input


@click.command(epilog=files.EXIT_STATUS)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON, one object per line and file.")
@click.option("--stats", is_flag=True, help="Also decode the latents: share of zero symbols, channels in use.")
@files.MODEL
@files.QUIET
@files.one_line_errors
def info(inputs, as_json, stats, model, quiet):
    """Show the header of .aec files (and, with --stats, how sparse their code is)."""

    def one(path: str) -> files.Done:
        data = read_input(path)
        fields = _fields(path, data, stats, model)
        return files.Done(json.dumps(fields) if as_json else _describe(fields), len(data), None)

    files.for_each(list(inputs), one, 1, quiet, "reading")


def _fields(path: str, data: bytes, stats: bool, model: str | None) -> dict:
    """The header of one file, read by container.py alone (no torch); --stats decodes its latents."""
    try:
        f = container.unpack(data)
    except container.FormatError as e:
        raise ValueError(f"{path}: {e}") from None
    h = f.header
    fields = {
        "file": path, "bytes": len(data), "width": h.width, "height": h.height, "mode": h.mode,
        "quality": h.quality, "model": h.model, "model_hash": h.model_hash.hex(),
        "bpp": round(len(data) * 8 / (h.width * h.height), 5),
        "sections": {container.SECTION_NAMES.get(t, str(t)): len(p) for t, p in f.sections.items()},
    }
    if container.DENOISE in f.sections:
        fields["denoise_level"] = container.unpack_noise_level(f.sections[container.DENOISE])
    if stats:
        from dataclasses import asdict

        from ..sparsity import sparsity_of

        try:
            fields["stats"] = asdict(sparsity_of(data, model))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
    return fields


def _describe(fields: dict) -> str:
    sections = ", ".join(f"{k} {v} B" for k, v in fields["sections"].items())
    line = (f"{fields['file']}: {fields['width']}x{fields['height']} {fields['mode']}, q {fields['quality']:g}, "
            f"{fields['bytes']} bytes ({fields['bpp']} bpp), model {fields['model']} ({fields['model_hash']}), "
            f"sections: {sections}"
            + (f", denoised at level {fields['denoise_level']:g}" if fields.get("denoise_level") else ""))
    if "stats" in fields:
        st = fields["stats"]
        line += (f"\n  y symbols zero: {100 * st['zero_share']:.1f}%, channels with any non-zero symbol: "
                 f"{st['nonzero_channels']}/{st['channels']}, channels holding 99% of the bits: {st['channels_99']}")
    return line


