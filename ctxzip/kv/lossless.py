"""Lossless chunk bodies of stream version 2 (chunk flag 8): exponents modelled, mantissas raw.

A float's exponent field varies little inside one channel of one head, while its sign and mantissa
bits are close to uniform (on SmolLM2, 7 bf16 mantissa bits carry 6.97 bits of entropy). So:

- `median`: u8 [rows, head_dim], the median exponent of each (row, channel) over the chunk's tokens;
- the exponent minus that median (plus 2**(E-1), mod 2**E, so small differences sit together), joined with the bits of (sign, mantissa) above
  its whole bytes (3 for float16: sign and the top two mantissa bits; none for bfloat16 and float32),
  is one symbol, rANS-coded with one table for keys and one for values (u16 frequencies in the chunk);
- the low bytes of (sign, mantissa) follow raw, one plane per byte.

    body = median:u8[R*D] table[2] rans_block raw:u8[bytes][R*T*D]     table = low:u16 count:u16 freq:u16[count]

On a bfloat16 SmolLM2 cache this gives ~10.6 bits per value (1.5x); float16 keeps 10 mantissa bits
(~13.6 bits, 1.18x): those bits are noise to any model of the value's neighbours.
"""

from __future__ import annotations

import numpy as np
import torch

from ctxzip.kv import rans
from ctxzip.kv.format import KVFormatError

# dtype -> (unsigned view, exponent bits, mantissa bits)
FIELDS = {torch.float16: (torch.int16, 5, 10), torch.bfloat16: (torch.int16, 8, 7), torch.float32: (torch.int32, 8, 23)}


def _split(raw_bits: int) -> tuple[int, int]:
    """(raw bytes, leftover top bits) of the sign+mantissa field."""
    return raw_bits // 8, raw_bits % 8


def _tables(counts: np.ndarray) -> np.ndarray:
    """Normalised frequencies for each row of counts; a row with no symbols gets a flat table."""
    out = []
    for row in counts:
        out.append(rans.normalize_counts(row if row.sum() else np.ones_like(row)))
    return np.stack(out)


def _pack_tables(freq: np.ndarray) -> bytes:
    """Each table as low:u16 count:u16 freq:u16[count], the range of its used symbols."""
    out = []
    for row in freq:
        used = np.flatnonzero(row)
        low, high = int(used[0]), int(used[-1]) + 1
        out.append(np.array([low, high - low], "<u2").tobytes() + row[low:high].astype("<u2").tobytes())
    return b"".join(out)


def _unpack_tables(view: memoryview, pos: int, n: int, alphabet: int) -> tuple[np.ndarray, int]:
    freq = np.zeros((n, alphabet), np.int64)
    for t in range(n):
        low, count = (int(v) for v in np.frombuffer(view, "<u2", 2, pos))
        if low + count > alphabet:
            raise KVFormatError("lossless chunk has a symbol table past its alphabet")
        freq[t, low:low + count] = np.frombuffer(view, "<u2", count, pos + 4)
        pos += 4 + 2 * count
    return freq, pos


def encode_body(x: torch.Tensor, rows_per_kind: int) -> bytes:
    """Body for x [R, T, D] (float16, bfloat16 or float32); rows alternate keys/values per layer."""
    view, ebits, mbits = FIELDS[x.dtype]
    rows, tokens, dim = x.shape
    nbits = 16 if view == torch.int16 else 32
    u = x.contiguous().view(view).numpy().astype(np.int64) & ((1 << nbits) - 1)
    exponent = (u >> mbits) & ((1 << ebits) - 1)
    median = np.median(exponent, axis=1).astype(np.int64)  # [R, D]
    delta = (exponent - median[:, None, :] + (1 << (ebits - 1))) % (1 << ebits)  # centred: small deltas stay together
    rest = ((u >> (mbits + ebits)) << mbits) | (u & ((1 << mbits) - 1))  # sign, mantissa
    raw_bytes, top_bits = _split(1 + mbits)
    kind = _row_kinds(rows, rows_per_kind)
    symbol = ((delta << top_bits) | (rest >> (8 * raw_bytes))).reshape(-1)  # exponent delta, then the top bits
    counts = np.zeros((2, 1 << (ebits + top_bits)), np.int64)
    np.add.at(counts, (np.repeat(kind, tokens * dim), symbol), 1)
    freq = _tables(counts)
    tables = rans.Tables(freq, np.zeros(2, np.int64), np.full(2, -1, np.int64))
    parts = [median.astype(np.uint8).tobytes(), _pack_tables(freq), rans.encode(symbol, kind, tokens * dim, tables)]
    planes = [((rest >> (8 * b)) & 0xFF).astype(np.uint8) for b in range(raw_bytes)]
    parts += [plane.tobytes() for plane in planes]
    return b"".join(parts)


def _row_kinds(rows: int, rows_per_kind: int) -> np.ndarray:
    """0 for key rows, 1 for value rows: rows go (layer, kind, batch x head), `rows_per_kind` = batch x heads."""
    return np.arange(rows) // max(rows_per_kind, 1) % 2


def decode_body(view: memoryview, pos: int, shape: tuple[int, int, int], dtype: torch.dtype,
                rows_per_kind: int) -> tuple[torch.Tensor, int]:
    """(tensor [R, T, D] in dtype, end position) from a body at `pos`."""
    if dtype not in FIELDS:
        raise KVFormatError(f"lossless chunk of unsupported dtype {dtype}")
    unsigned, ebits, mbits = FIELDS[dtype]
    rows, tokens, dim = shape
    n = rows * tokens * dim
    raw_bytes, top_bits = _split(1 + mbits)
    alphabet = 1 << (ebits + top_bits)
    try:
        median = np.frombuffer(view, np.uint8, rows * dim, pos).astype(np.int64)
        pos += rows * dim
        freq, pos = _unpack_tables(view, pos, 2, alphabet)
    except ValueError:
        raise KVFormatError("lossless chunk too short for its exponent model") from None
    tables = rans.Tables(freq, np.zeros(2, np.int64), np.full(2, -1, np.int64))
    symbol, pos = rans.decode(view, pos, n, _row_kinds(rows, rows_per_kind), tokens * dim, tables)
    if len(view) < pos + raw_bytes * n:
        raise KVFormatError("lossless chunk too short for its raw mantissa bytes")
    raw = np.frombuffer(view, np.uint8, raw_bytes * n, pos).reshape(raw_bytes, n) if raw_bytes else np.zeros((0, n), np.uint8)
    pos += raw_bytes * n
    out = np.empty(n, np.uint16 if unsigned == torch.int16 else np.uint32)
    _assembler()(symbol, median, raw, rows, tokens, dim, ebits, mbits, top_bits, out)
    signed = out.view(np.int16 if unsigned == torch.int16 else np.int32).reshape(rows, tokens, dim)
    return torch.from_numpy(signed).view(dtype), pos


def _assemble(symbol, median, raw, rows, tokens, dim, ebits, mbits, top_bits, out):
    """Bit patterns from (exponent delta, top bits) symbols, medians [R*D] and raw bytes: one pass (numba)."""
    emask = (1 << ebits) - 1
    mmask = (1 << mbits) - 1
    tmask = (1 << top_bits) - 1
    raw_bytes = raw.shape[0]
    i = 0
    for row in range(rows):
        for _ in range(tokens):
            for channel in range(dim):
                s = symbol[i]
                exponent = ((s >> top_bits) - (1 << (ebits - 1)) + median[row * dim + channel]) & emask
                rest = (s & tmask) << (8 * raw_bytes)
                for b in range(raw_bytes):
                    rest |= np.int64(raw[b, i]) << (8 * b)
                out[i] = ((rest >> mbits) << (mbits + ebits)) | (exponent << mbits) | (rest & mmask)
                i += 1


_compiled = None


def _assembler():
    global _compiled
    if _compiled is None:
        import numba

        _compiled = numba.njit(cache=True, nogil=True)(_assemble)
    return _compiled
