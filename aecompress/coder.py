"""Symbols + integer tables <-> bytes. The only module that imports constriction.

Each stream is one ANS stack (Duda 2013; constriction's AnsCoder). Symbols are grouped by
table: all symbols of table 0 in raster order, then table 1, and so on, so every group is
coded with one fixed `Categorical` built from integer counts (the same float64 array on
both sides, hence the same fixed-point model). A symbol outside its table's range is coded
as the table's escape entry, and its value follows after the groups as a zigzag integer in
two 16-bit halves: nothing is ever clipped.
"""

from __future__ import annotations

from functools import lru_cache

import constriction
import numpy as np

from .entropy import Tables

_RAW = constriction.stream.model.Uniform(2**16)
RAW_LIMIT = 2**30  # every value must satisfy |v| < RAW_LIMIT


class CorruptStream(ValueError):
    """The bytes do not decode to a valid symbol stream."""


@lru_cache(maxsize=4096)
def _categorical(counts: bytes) -> constriction.stream.model.Categorical:
    probs = np.frombuffer(counts, dtype=np.int32).astype(np.float64)
    return constriction.stream.model.Categorical(probs, perfect=False)


def _model(tables: Tables, i: int):
    return _categorical(tables.counts[i, : tables.length[i]].tobytes())


def _zigzag(v: np.ndarray) -> np.ndarray:  # int64 in, int64 out
    return np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.int64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2).astype(np.int64)


def _groups(table_ids: np.ndarray, n_tables: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by table (stable: raster order within a table) and each table's count."""
    order = np.argsort(table_ids, kind="stable")
    counts = np.bincount(table_ids, minlength=n_tables)
    return order, counts


def encode(symbols: np.ndarray, table_ids: np.ndarray, tables: Tables) -> bytes:
    """symbols, table_ids: int64 arrays of the same shape -> compressed bytes."""
    symbols, table_ids = symbols.ravel(), table_ids.ravel()
    if symbols.size and max(-int(symbols.min()), int(symbols.max())) >= RAW_LIMIT:
        raise ValueError("latent value out of the codable range")
    symbols = symbols.astype(np.int32, copy=False)  # int32 throughout: memory of large images
    index = symbols - tables.offset[table_ids]
    length = tables.length[table_ids]
    escaped = (index < 0) | (index > length - 2)
    del length
    index[escaped] = tables.length[table_ids[escaped]] - 1
    order, counts = _groups(table_ids, len(tables.length))
    index = index[order]
    raw = _zigzag(symbols[order][escaped[order]].astype(np.int64))
    coder = constriction.stream.stack.AnsCoder()
    if raw.size:  # decoded last, so encoded first
        halves = np.stack([raw & 0xFFFF, raw >> 16], axis=1).ravel().astype(np.int32)
        coder.encode_reverse(halves, _RAW)
    ends = np.cumsum(counts)
    for i in reversed(np.nonzero(counts)[0]):
        coder.encode_reverse(index[ends[i] - counts[i] : ends[i]].astype(np.int32), _model(tables, i))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, table_ids: np.ndarray, tables: Tables) -> np.ndarray:
    """The inverse of `encode`, for table_ids known to the decoder; returns int32 symbols."""
    if len(data) % 4:
        raise CorruptStream("stream length is not a whole number of words")
    words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
    shape = table_ids.shape
    table_ids = table_ids.ravel()
    order, counts = _groups(table_ids, len(tables.length))
    index = np.empty(table_ids.size, np.int32)
    start = 0
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        for i in np.nonzero(counts)[0]:
            index[start : start + counts[i]] = coder.decode(_model(tables, i), int(counts[i]))
            start += counts[i]
        sorted_ids = table_ids[order]
        escaped = index == tables.length[sorted_ids] - 1
        values = index + tables.offset[sorted_ids]
        del sorted_ids
        n_raw = int(escaped.sum())
        if n_raw:
            halves = coder.decode(_RAW, 2 * n_raw).astype(np.int64).reshape(-1, 2)
            raw = _unzigzag(halves[:, 0] | (halves[:, 1] << 16))
            if np.abs(raw).max() >= RAW_LIMIT:
                raise CorruptStream("escaped value out of range")
            values[escaped] = raw
        if not coder.is_empty():
            raise CorruptStream("stream holds more data than its symbols")
    except BaseException as e:  # constriction raises plain exceptions on exhausted input
        if isinstance(e, KeyboardInterrupt):
            raise
        raise CorruptStream(f"entropy-coded data is damaged ({e})") from None
    symbols = np.empty_like(values)
    symbols[order] = values
    return symbols.reshape(shape)
