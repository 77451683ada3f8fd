"""Command line: each command parses, calls one public function, prints one line per file.

    code.py   encode, decode, denoise
    info.py   info
    tools.py  train, bench, compare

Modules that import torch are imported inside the commands that code pixels, so that
`--help` and `info` answer at once.
"""

from __future__ import annotations

import click

from .. import files
from .code import decode, denoise, encode
from .info import info
from .tools import bench, compare, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=files.EXIT_STATUS)
@click.version_option(package_name="aecompress")
def main() -> None:
    """aecompress: a learned image codec.

    \b
      aecompress encode photo.png -q 75          # -> photo.aec
      aecompress decode photo.aec -o back.png    # -> PNG (or by extension)
      aecompress info photo.aec
    """


for command in (encode, decode, denoise, info, train, bench, compare):
    main.add_command(command)
