"""Optional dependencies: imported where a feature needs them, with a one-line hint otherwise.

The core install codes images with numpy, Pillow and constriction alone. torch (the encoder
search, CUDA, training), scipy and matplotlib (benchmarks) come with extras.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(ModuleNotFoundError, LookupError):
    """An optional dependency is not installed (a LookupError too: the CLI prints it as one line)."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import an optional dependency, or fail with one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise MissingExtra(f"{what} needs {module.split('.')[0]}: pip install 'aecompress[{extra}]'") from None
