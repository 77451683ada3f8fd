"""Read a weights file without torch: torch's zip format, into numpy arrays.

`torch.save` writes a zip archive: `<name>/data.pkl`, a pickle whose tensors refer to raw
little-endian storages `<name>/data/<key>`. Decoding needs only those arrays, and importing
torch costs seconds, so this module reads the archive itself. Its unpickler knows exactly
the globals a weights file uses (tensor rebuilding, storage types, OrderedDict) and refuses
every other one, like `torch.load(weights_only=True)`: a weights file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

_STORAGES = {
    "FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
    "IntStorage": np.int32, "LongStorage": np.int64, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type):
        self.dtype = dtype


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_ignored) -> np.ndarray:
    if not size:
        return storage[offset].copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride))
    return np.ascontiguousarray(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix = archive, prefix

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _Storage(_STORAGES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"weights file refers to {module}.{name}, which it may not")

    def persistent_load(self, pid):
        kind, storage, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("weights file holds an unknown kind of storage")
        raw = self._archive.read(f"{self._prefix}/data/{key}")
        array = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder("<"))
        if array.size != numel:
            raise pickle.UnpicklingError("weights file storage has the wrong size")
        return array


def load(raw: bytes) -> dict:
    """The object a weights file holds, its tensors as numpy arrays."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError("not a torch archive")
        prefix = pickles[0][: -len("/data.pkl")]
        marked = f"{prefix}/byteorder" in archive.namelist()
        order = archive.read(f"{prefix}/byteorder").decode() if marked else "little"
        if order != "little":
            raise ValueError("big-endian weights files are not supported")
        return _Unpickler(archive.read(pickles[0]), archive, prefix).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
        raise ValueError(f"not a readable weights file ({e})") from None
