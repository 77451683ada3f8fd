"""Integer coding tables: what the entropy coder reads, and all it reads (no torch here).

A table covers symbols offset .. offset + len - 2; its last entry is the escape symbol for
anything outside that range (the value then follows in raw bits), so no symbol is clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tables:
    """Integer frequency tables: row i is used for symbols offset[i] + 0 .. length[i] - 2."""

    counts: np.ndarray  # int32 (n_tables, max_len), zero-padded; counts[i, length[i]-1] = escape
    offset: np.ndarray  # int32 (n_tables,)
    length: np.ndarray  # int32 (n_tables,)

    @staticmethod
    def unpack(flat: np.ndarray, offset: np.ndarray, length: np.ndarray) -> Tables:
        """Rows stored back to back without their padding (as in a weights file) -> Tables."""
        flat, length = flat.astype(np.int32), length.astype(np.int32)
        if length.min() < 2 or length.sum() != flat.size:
            raise ValueError("coding tables are damaged")
        counts = np.zeros((len(length), length.max()), np.int32)
        starts = np.concatenate([[0], np.cumsum(length)[:-1]])
        for i, (s, n) in enumerate(zip(starts, length)):
            counts[i, :n] = flat[s : s + n]
        return Tables(counts=counts, offset=offset.astype(np.int32), length=length)

    def packed(self) -> np.ndarray:
        """The rows back to back without their padding (the inverse of `unpack`)."""
        return np.concatenate([self.counts[i, :n] for i, n in enumerate(self.length)]).astype(np.int32)


def information_bits(symbols: np.ndarray, table_ids: np.ndarray, tables: Tables) -> float:
    """Ideal code length of symbols under the integer tables (escapes: 32 raw bits more)."""
    ids, s = table_ids.ravel(), symbols.ravel()
    index = s - tables.offset[ids]
    length = tables.length[ids]
    escaped = (index < 0) | (index > length - 2)
    index = np.where(escaped, length - 1, index)
    p = tables.counts[ids, index] / float(tables.counts[0].sum())
    return float(-np.log2(p).sum() + 32 * escaped.sum())
