"""Interleaved rANS with static tables, compiled with numba: the entropy coder of stream version 2.

Symbols are coded in `lanes` independent rANS states; symbol i belongs to lane i % lanes, and each
lane writes its own stream of 16-bit words, so lanes decode in parallel (the Triton kernel in
`rans_triton.py` runs one lane per GPU thread; the CPU decoder interleaves them in one loop, which
keeps several independent dependency chains in flight).

Symbols come in segments of `segment_length` symbols; segment s uses table `segment_table[s]`.
A table is a frequency list over alphabet positions 0..A-1 summing to 2**PROB_BITS. Position
`escape` (when >= 0) is an escape: the value that follows is sent as two uniform 12-bit symbols
(signed 24 bits around the table's `offset`), so rare large symbols need no table entry.

    state x in [2**16, 2**32); encode: if x >= 2**(32-PROB_BITS) * f: emit x & 0xFFFF, x >>= 16
                                        x = (x // f) << PROB_BITS | (x % f) + cum
    decode: slot = x & (M-1); s = lut[slot]; x = f[s] * (x >> PROB_BITS) + slot - cum[s]; if x < 2**16: x = x << 16 | word

Every lane starts at x = 2**16 in the encoder, so a decoder must end each lane at exactly that state
having read exactly its words: any damage that survives the CRC still fails this check.
"""

from __future__ import annotations

import numpy as np

from ctxzip.kv.format import KVFormatError

PROB_BITS = 14
M = 1 << PROB_BITS
RANS_L = 1 << 16
ESCAPE_BITS = 12  # an escaped value is two uniform symbols of 12 bits (24 bits, signed)
ESCAPE_BIAS = 1 << 23
DEFAULT_LANES = 32

_U = np.uint64
# numba turns mixed signed/unsigned arithmetic into floats: every state constant is uint64
PB, EB, LOW = _U(PROB_BITS), _U(PROB_BITS - ESCAPE_BITS), _U(RANS_L)
RENORM, W16, WMASK = _U((RANS_L >> PROB_BITS) << 16), _U(16), _U(0xFFFF)
SMASK, ONE_ESC = _U(M - 1), _U(1 << (PROB_BITS - ESCAPE_BITS))

_compiled: tuple | None = None


def _jit():
    """The compiled coder loops (numba, imported and compiled on first use, cached on disk)."""
    global _compiled
    if _compiled is None:
        try:
            import numba
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("the KV codec's entropy coder needs numba: pip install 'ctxzip[kv]'") from exc
        jit = numba.njit(cache=True, nogil=True)
        _compiled = (jit(_encode_lanes), jit(_decode_lanes))
    return _compiled


def _encode_lanes(values, segment_table, segment_length, freq, cum, offset, escape, lanes, out, counts):
    # values: int32 [n]; walks backwards so each lane's decoder reads its words forwards.
    n = values.shape[0]
    state = np.full(lanes, LOW, dtype=np.uint64)
    cap = out.shape[1]
    for i in range(n - 1, -1, -1):
        lane = i % lanes
        t = segment_table[i // segment_length]
        pos = values[i] - offset[t]
        escaped = False
        if escape[t] >= 0 and (pos < 0 or pos >= escape[t]):
            escaped = True
        elif pos < 0 or pos >= freq.shape[1] or freq[t, pos] == 0:
            return -1 - i  # a symbol its table cannot code
        x = state[lane]
        if escaped:
            v = values[i] - offset[t] + ESCAPE_BIAS
            if v < 0 or v >= (1 << (2 * ESCAPE_BITS)):
                return -1 - i
            # decoder reads: escape, high 12 bits, low 12 bits -> encode in reverse
            for part in range(2):
                sym = (v >> (ESCAPE_BITS * part)) & ((1 << ESCAPE_BITS) - 1)
                c = np.uint64(sym) << EB
                if x >= RENORM * ONE_ESC:
                    out[lane, counts[lane]] = x & WMASK
                    counts[lane] += 1
                    x >>= W16
                x = ((x // ONE_ESC) << PB) + (x % ONE_ESC) + c
            pos = escape[t]
        f = np.uint64(freq[t, pos])
        c = np.uint64(cum[t, pos])
        if x >= RENORM * f:
            if counts[lane] >= cap:
                return -1 - i
            out[lane, counts[lane]] = x & WMASK
            counts[lane] += 1
            x >>= W16
        x = ((x // f) << PB) + (x % f) + c
        state[lane] = x
    for lane in range(lanes):  # the final state goes first in the lane's stream (2 words)
        out[lane, counts[lane]] = state[lane] & WMASK
        out[lane, counts[lane] + 1] = state[lane] >> W16
        counts[lane] += 2
    return 0

def _decode_lanes(words, starts, counts, n, segment_table, segment_length, packed, offset, escape, out):
    # words: uint16 of all lanes; lane l's words at starts[l]..starts[l]+counts[l], read from the top down.
    # packed[t, slot] = symbol | freq << 16 | cum << 32: one load per symbol.
    lanes = starts.shape[0]
    state = np.zeros(lanes, dtype=np.uint64)
    ptr = np.zeros(lanes, dtype=np.int64)  # index of the next word to read, going down
    for lane in range(lanes):
        if counts[lane] < 2:
            return -1
        top = starts[lane] + counts[lane]
        state[lane] = (np.uint64(words[top - 1]) << W16) | np.uint64(words[top - 2])
        ptr[lane] = top - 3
    m16 = np.uint64(0xFFFF)
    lane_mask = lanes - 1  # lanes is a power of two
    peak = 0  # largest |value|, returned so callers know whether 16-bit floats hold the symbols exactly
    n_segments = (n + segment_length - 1) // segment_length
    for seg in range(n_segments):
        t = segment_table[seg]
        table = packed[t]
        esc = escape[t]
        off = offset[t]
        hi = min(n, (seg + 1) * segment_length)
        for i in range(seg * segment_length, hi):
            lane = i & lane_mask
            x = state[lane]
            slot = x & SMASK
            entry = table[slot]
            s = np.int64(entry & m16)
            x = ((entry >> W16) & m16) * (x >> PB) + slot - (entry >> np.uint64(32))
            # branch-free refill (whether a lane needs a word is a coin toss); a lane that reads below its
            # start is caught by the end-of-block check, the index is clamped so it never leaves the array
            p = ptr[lane]
            need = x < LOW
            w = np.uint64(words[max(p, 0)])
            x = (x << W16) | w if need else x
            ptr[lane] = p - need
            if s == esc:
                v = 0
                for part in range(2):
                    slot = x & SMASK
                    sym = slot >> EB
                    x = ONE_ESC * (x >> PB) + slot - (sym << EB)
                    if x < LOW:
                        if ptr[lane] < starts[lane]:
                            return -1
                        x = (x << W16) | np.uint64(words[ptr[lane]])
                        ptr[lane] -= 1
                    v = (v << ESCAPE_BITS) | np.int64(sym)
                value = v - ESCAPE_BIAS + off
            else:
                value = s + off
            out[i] = value
            peak = max(peak, abs(value))
            state[lane] = x
    for lane in range(lanes):
        if state[lane] != LOW or ptr[lane] != starts[lane] - 1:
            return -2
    return peak


class Tables:
    """Static rANS tables: freq/cum [tables, A] (uint32), lut [tables, M] (uint16), offset, escape."""

    def __init__(self, freq: np.ndarray, offset: np.ndarray, escape: np.ndarray) -> None:
        self.freq = np.ascontiguousarray(freq, dtype=np.uint32)
        if (self.freq.sum(axis=1) != M).any():
            raise KVFormatError("rANS table frequencies must sum to 2**PROB_BITS")
        self.cum = np.zeros_like(self.freq)
        self.cum[:, 1:] = np.cumsum(self.freq, axis=1)[:, :-1]
        self.lut = np.empty((len(self.freq), M), dtype=np.uint16)
        for t, row in enumerate(self.freq):
            self.lut[t] = np.repeat(np.arange(row.size, dtype=np.uint16), row)
        self.packed = (np.take_along_axis(self.cum.astype(np.uint64), self.lut.astype(np.int64), 1) << np.uint64(32)
                       | np.take_along_axis(self.freq.astype(np.uint64), self.lut.astype(np.int64), 1) << np.uint64(16)
                       | self.lut.astype(np.uint64))
        self.offset = np.ascontiguousarray(offset, dtype=np.int64)
        self.escape = np.ascontiguousarray(escape, dtype=np.int64)


def normalize_counts(counts: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Integer frequencies summing to M, >= 1 wherever counts > 0 (or `keep`), proportional otherwise."""
    counts = np.asarray(counts, dtype=np.float64)
    need = counts > 0 if keep is None else (counts > 0) | keep
    if not need.any():
        raise KVFormatError("cannot build a rANS table with no symbols")
    slots = M - int(need.sum())
    if slots < 0:
        raise KVFormatError("alphabet too large for the rANS table precision")
    share = counts / counts.sum() * slots if counts.sum() > 0 else np.zeros_like(counts)
    freq = np.floor(share).astype(np.int64) + need
    short = M - int(freq.sum())
    order = np.argsort(-(share - np.floor(share)))  # hand out what rounding left, largest remainders first
    freq[order[:short]] += 1
    return freq


def encode(values: np.ndarray, segment_table: np.ndarray, segment_length: int, tables: Tables,
           lanes: int = DEFAULT_LANES) -> bytes:
    """`lanes:u16 counts:u32[lanes] words:u16[sum(counts)]` for int values [n]."""
    encode_fn, _ = _jit()
    values = np.ascontiguousarray(values, dtype=np.int64)
    n = values.size
    # a power of two, with at least 64 symbols per lane: each lane costs 8 bytes (its count and final state)
    lanes = 1 << max(0, min(lanes, max(n // 64, 1)).bit_length() - 1)
    per_lane = -(-n // lanes) if n else 0
    out = np.zeros((lanes, 3 * per_lane + 2), dtype=np.uint16)  # <= 3 words per symbol with an escape
    counts = np.zeros(lanes, dtype=np.int64)
    status = encode_fn(values, np.ascontiguousarray(segment_table, dtype=np.int64), max(segment_length, 1),
                       tables.freq, tables.cum, tables.offset, tables.escape, lanes, out, counts)
    if status != 0:
        i = -1 - status
        raise KVFormatError(f"symbol {values[i]} at {i} is outside its rANS table")
    words = np.concatenate([out[lane, :counts[lane]] for lane in range(lanes)]) if lanes else np.zeros(0, np.uint16)
    return (np.uint16(lanes).astype("<u2").tobytes() + counts.astype("<u4").tobytes()
            + words.astype("<u2").tobytes())


def parse(data: memoryview, pos: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(words, lane starts, lane counts, end position) of an encoded block starting at `pos`."""
    try:
        lanes = int(np.frombuffer(data, "<u2", 1, pos)[0])
        counts = np.frombuffer(data, "<u4", lanes, pos + 2).astype(np.int64)
        total = int(counts.sum())
        words = np.frombuffer(data, "<u2", total, pos + 2 + 4 * lanes)
    except ValueError:
        raise KVFormatError("rANS block is truncated") from None
    if lanes == 0:
        raise KVFormatError("rANS block has no lanes")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return words, starts, counts, pos + 2 + 4 * lanes + 2 * total


def decode(data: memoryview, pos: int, n: int, segment_table: np.ndarray, segment_length: int,
           tables: Tables) -> tuple[np.ndarray, int]:
    """n int32 values from the block at `pos`, and the position after it."""
    values, end, _ = decode_with_peak(data, pos, n, segment_table, segment_length, tables)
    return values, end


def decode_with_peak(data: memoryview, pos: int, n: int, segment_table: np.ndarray, segment_length: int,
                     tables: Tables) -> tuple[np.ndarray, int, int]:
    """(values, end position, largest |value|)."""
    _, decode_fn = _jit()
    words, starts, counts, end = parse(data, pos)
    if len(counts) > max(n, 1) or len(counts) & (len(counts) - 1):
        raise KVFormatError("rANS block has more lanes than symbols or a lane count that is not a power of two")
    out = np.empty(n, dtype=np.int32)
    segment_table = np.ascontiguousarray(segment_table, dtype=np.int64)
    if n and (segment_table.size < -(-n // max(segment_length, 1)) or (segment_table >= len(tables.freq)).any()
              or (segment_table < 0).any()):
        raise KVFormatError("rANS segment tables do not cover the block")
    status = decode_fn(words, starts, counts, n, segment_table, max(segment_length, 1), tables.packed,
                       tables.offset, tables.escape, out)
    if status < 0:
        raise KVFormatError("rANS block is corrupted (its lanes do not decode to their start state)")
    return out, end, int(status)
