"""Symbols + integer tables <-> bytes. The only module that imports constriction.

Each stream is one ANS stack (Duda 2013; constriction's AnsCoder) of one or more parts, decoded
in order (`encode_parts`, `Reader`). Within a part, symbols are grouped by
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

from .tables import Tables

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


def _push(coder: constriction.stream.stack.AnsCoder, symbols: np.ndarray, table_ids: np.ndarray,
          tables: Tables) -> None:
    """Put one part on the stack so that `_pop` with the same table_ids takes it off again."""
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
    if raw.size:  # decoded last, so encoded first
        halves = np.stack([raw & 0xFFFF, raw >> 16], axis=1).ravel().astype(np.int32)
        coder.encode_reverse(halves, _RAW)
    ends = np.cumsum(counts)
    for i in reversed(np.nonzero(counts)[0]):
        coder.encode_reverse(index[ends[i] - counts[i] : ends[i]].astype(np.int32), _model(tables, i))


def encode_parts(parts: list[tuple[np.ndarray, np.ndarray]], tables: Tables) -> bytes:
    """Several (symbols, table_ids) parts in one stream, decoded in this order by a `Reader`:
    the table_ids of a later part may depend on the symbols of earlier ones."""
    coder = constriction.stream.stack.AnsCoder()
    for symbols, table_ids in reversed(parts):
        _push(coder, symbols, table_ids, tables)
    return coder.get_compressed().astype("<u4").tobytes()


def encode(symbols: np.ndarray, table_ids: np.ndarray, tables: Tables) -> bytes:
    """symbols, table_ids: int64 arrays of the same shape -> compressed bytes."""
    return encode_parts([(symbols, table_ids)], tables)


class Reader:
    """Decodes the parts of a stream one at a time (see `encode_parts`)."""

    def __init__(self, data: bytes):
        if len(data) % 4:
            raise CorruptStream("stream length is not a whole number of words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = constriction.stream.stack.AnsCoder(words)
        except BaseException as e:
            raise _corrupt(e) from None

    def read(self, table_ids: np.ndarray, tables: Tables) -> np.ndarray:
        """The next part, for table_ids known to the decoder; returns int32 symbols."""
        shape = table_ids.shape
        table_ids = table_ids.ravel()
        order, counts = _groups(table_ids, len(tables.length))
        index = np.empty(table_ids.size, np.int32)
        start = 0
        try:
            for i in np.nonzero(counts)[0]:
                index[start : start + counts[i]] = self._coder.decode(_model(tables, int(i)), int(counts[i]))
                start += counts[i]
            sorted_ids = table_ids[order]
            escaped = index == tables.length[sorted_ids] - 1
            values = index + tables.offset[sorted_ids]
            del sorted_ids
            n_raw = int(escaped.sum())
            if n_raw:
                halves = self._coder.decode(_RAW, 2 * n_raw).astype(np.int64).reshape(-1, 2)
                raw = _unzigzag(halves[:, 0] | (halves[:, 1] << 16))
                if np.abs(raw).max() >= RAW_LIMIT:
                    raise CorruptStream("escaped value out of range")
                values[escaped] = raw
        except BaseException as e:
            raise _corrupt(e) from None
        symbols = np.empty_like(values)
        symbols[order] = values
        return symbols.reshape(shape)

    def finish(self) -> None:
        """Check that every word of the stream was used."""
        if not self._coder.is_empty():
            raise CorruptStream("stream holds more data than its symbols")


def _corrupt(e: BaseException) -> BaseException:
    """constriction raises plain exceptions on exhausted input: one error type for all damage."""
    if isinstance(e, (KeyboardInterrupt, CorruptStream)):
        return e
    return CorruptStream(f"entropy-coded data is damaged ({e})")


def decode(data: bytes, table_ids: np.ndarray, tables: Tables) -> np.ndarray:
    """The inverse of `encode`, for table_ids known to the decoder; returns int32 symbols."""
    reader = Reader(data)
    symbols = reader.read(table_ids, tables)
    reader.finish()
    return symbols
