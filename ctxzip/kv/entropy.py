"""Entropy coding of integer symbols with constriction's ANS coder and tables stored in the stream.

Symbols come in *segments* (one per layer, key/value, head and channel group, see `chunk.py`); each
segment gets its own categorical distribution learned from its symbols, stored as the segment's
lowest symbol, its alphabet length and one byte per symbol (counts scaled so the largest is 255).
The decoder knows each segment's size from the geometry, so sizes are not stored.
"""

from __future__ import annotations

import numpy as np

from ctxzip.kv.format import KVFormatError

MAX_ALPHABET = 65535  # table lengths are stored as uint16


def _constriction():
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the KV codec needs `pip install ctxzip[kv]` (constriction)") from exc
    return constriction


def scaled_counts(symbols: np.ndarray, low: int, length: int) -> np.ndarray:
    """Counts over [low, low + length) scaled to 1..255 (0 stays 0): one byte per table entry."""
    counts = np.bincount(symbols - low, minlength=length).astype(np.float64)
    scaled = np.rint(counts * (255.0 / counts.max()))
    return np.where(counts > 0, np.maximum(scaled, 1), 0).astype(np.uint8)


def _model(table: np.ndarray):
    return _constriction().stream.model.Categorical(table.astype(np.float64), perfect=False)


def encode_segments(segments: list[np.ndarray]) -> bytes:
    """Tables and ANS words for all segments, in one byte string."""
    n = len(segments)
    lows = np.zeros(n, dtype=np.int32)
    lengths = np.zeros(n, dtype=np.uint16)
    tables = []
    for i, seg in enumerate(segments):
        if seg.size == 0:
            tables.append(np.zeros(0, dtype=np.uint8))
            continue
        low, high = int(seg.min()), int(seg.max())
        if high - low + 1 > MAX_ALPHABET:
            raise KVFormatError(f"segment alphabet of {high - low + 1} symbols exceeds {MAX_ALPHABET}")
        lows[i], lengths[i] = low, high - low + 1
        tables.append(scaled_counts(seg.astype(np.int64), low, high - low + 1))
    coder = _constriction().stream.stack.AnsCoder()
    # ANS is a stack: encode the last segment first so the decoder reads them in order.
    for i in reversed(range(n)):
        if segments[i].size and lengths[i] > 1:
            coder.encode_reverse((segments[i] - lows[i]).astype(np.int32), _model(tables[i]))
    words = coder.get_compressed().astype("<u4")
    return b"".join([
        np.uint32(n).astype("<u4").tobytes(), lows.astype("<i4").tobytes(), lengths.astype("<u2").tobytes(),
        np.concatenate(tables).tobytes() if tables else b"",
        np.uint32(words.size).astype("<u4").tobytes(), words.tobytes(),
    ])


def decode_segments(data: memoryview, sizes: list[int]) -> tuple[np.ndarray, int]:
    """All segments of the given sizes from `data`, concatenated (int32), and the bytes read."""
    try:
        n = int(np.frombuffer(data, "<u4", 1, 0)[0])
        if n != len(sizes):
            raise KVFormatError(f"chunk has {n} entropy-coded segments, its geometry needs {len(sizes)}")
        pos = 4
        lows = np.frombuffer(data, "<i4", n, pos).astype(np.int64); pos += 4 * n
        lengths = np.frombuffer(data, "<u2", n, pos).astype(np.int64); pos += 2 * n
        tables = np.frombuffer(data, np.uint8, int(lengths.sum()), pos); pos += int(lengths.sum())
        n_words = int(np.frombuffer(data, "<u4", 1, pos)[0]); pos += 4
        words = np.frombuffer(data, "<u4", n_words, pos).astype(np.uint32); pos += 4 * n_words
    except ValueError as exc:  # frombuffer past the end
        raise KVFormatError(f"chunk payload too short for its entropy tables: {exc}") from None
    coder = _constriction().stream.stack.AnsCoder(words)
    starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    out = np.empty(sum(sizes), dtype=np.int32)
    at = 0
    for i, size in enumerate(sizes):
        if size == 0:
            continue
        table = tables[starts[i]:starts[i + 1]]
        if lengths[i] == 1:
            out[at:at + size] = lows[i]
        elif lengths[i] == 0 or not table.any():
            raise KVFormatError(f"segment {i} has an empty symbol table")
        else:
            try:
                out[at:at + size] = coder.decode(_model(table), size)
            except Exception as exc:  # constriction runs out of data on a bad stream
                raise KVFormatError(f"entropy decoding failed in segment {i}: {exc}") from None
            out[at:at + size] += lows[i]
        at += size
    return out, pos
