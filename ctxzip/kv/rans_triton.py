"""Triton mirror of `rans.decode`: one rANS lane per GPU thread, the same tables and stream layout.

Lane l decodes symbols l, l + lanes, l + 2 lanes, ... exactly as the CPU loop does (state in int64,
which holds the 32-bit rANS state without overflow). Each lane reports its final state and read
position so the host applies the same end-of-block check. Tests run it on the CPU under
TRITON_INTERPRET=1 against the numba decoder; CUDA tensors use it in `decode_tensor`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ctxzip.kv import rans
from ctxzip.kv.format import KVFormatError

BLOCK = 64


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def decode_kernel(words_ptr, starts_ptr, counts_ptr, segtab_ptr, packed_ptr, offset_ptr, escape_ptr, out_ptr,
                      status_ptr, n, lanes, per_lane, segment_length,
                      PROB_BITS: tl.constexpr, ESC_BITS: tl.constexpr, LOW: tl.constexpr, BLOCK: tl.constexpr):
        lane = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = lane < lanes
        start = tl.load(starts_ptr + lane, mask=live, other=0)
        count = tl.load(counts_ptr + lane, mask=live, other=2)
        top = start + count
        high = tl.load(words_ptr + top - 1, mask=live, other=0).to(tl.int64)
        low = tl.load(words_ptr + top - 2, mask=live, other=0).to(tl.int64)
        x = (high << 16) | low
        ptr = top - 3
        slot_mask = (1 << PROB_BITS) - 1
        esc_shift = PROB_BITS - ESC_BITS
        bad = count < 2
        for k in range(0, per_lane):
            i = lane + k * lanes
            active = live & (i < n)
            t = tl.load(segtab_ptr + i // segment_length, mask=active, other=0)
            slot = x & slot_mask
            entry = tl.load(packed_ptr + t * (1 << PROB_BITS) + slot, mask=active, other=0)
            s = entry & 0xFFFF
            f = (entry >> 16) & 0xFFFF
            c = entry >> 32
            x = tl.where(active, f * (x >> PROB_BITS) + slot - c, x)
            need = active & (x < LOW)
            bad = bad | (need & (ptr < start))
            w = tl.load(words_ptr + ptr, mask=need & (ptr >= start), other=0).to(tl.int64)
            x = tl.where(need, (x << 16) | w, x)
            ptr = tl.where(need, ptr - 1, ptr)
            esc = tl.load(escape_ptr + t, mask=active, other=-1)
            off = tl.load(offset_ptr + t, mask=active, other=0)
            is_esc = active & (s == esc)
            v = tl.zeros_like(x)
            for part in range(2):
                slot = x & slot_mask
                sym = slot >> esc_shift
                x = tl.where(is_esc, (1 << esc_shift) * (x >> PROB_BITS) + slot - (sym << esc_shift), x)
                need = is_esc & (x < LOW)
                bad = bad | (need & (ptr < start))
                w = tl.load(words_ptr + ptr, mask=need & (ptr >= start), other=0).to(tl.int64)
                x = tl.where(need, (x << 16) | w, x)
                ptr = tl.where(need, ptr - 1, ptr)
                v = (v << ESC_BITS) | sym
            value = tl.where(is_esc, v - (1 << 23) + off, s + off)
            tl.store(out_ptr + i, value, mask=active)
        ok = (~bad) & (x == LOW) & (ptr == start - 1)
        tl.store(status_ptr + lane, ok.to(tl.int32), mask=live)

    return decode_kernel


def triton_decode(view: memoryview, pos: int, n: int, segment_table: np.ndarray, segment_length: int,
                  tables: rans.Tables, device) -> tuple[torch.Tensor, int]:
    """What `rans.decode` returns, as an int64 tensor on `device`, decoded by the Triton kernel."""
    words, starts, counts, end = rans.parse(view, pos)
    lanes = len(counts)
    if lanes > max(n, 1) or lanes & (lanes - 1):
        raise KVFormatError("rANS block has more lanes than symbols or a lane count that is not a power of two")
    segment_length = max(segment_length, 1)
    segment_table = np.ascontiguousarray(segment_table, dtype=np.int64)
    if n and (segment_table.size < -(-n // segment_length) or (segment_table >= len(tables.freq)).any()
              or (segment_table < 0).any()):
        raise KVFormatError("rANS segment tables do not cover the block")
    as_tensor = functools.partial(torch.as_tensor, device=device)
    out = torch.empty(n, dtype=torch.int64, device=device)
    status = torch.zeros(lanes, dtype=torch.int32, device=device)
    if n:
        _kernel()[(-(-lanes // BLOCK),)](
            as_tensor(words.astype(np.int32)), as_tensor(starts), as_tensor(counts), as_tensor(segment_table),
            as_tensor(tables.packed.view(np.int64)), as_tensor(tables.offset), as_tensor(tables.escape), out, status,
            n, lanes, -(-n // lanes), segment_length,
            PROB_BITS=rans.PROB_BITS, ESC_BITS=rans.ESCAPE_BITS, LOW=rans.RANS_L, BLOCK=BLOCK)
        if not bool(status.all()):
            raise KVFormatError("rANS block is corrupted (its lanes do not decode to their start state)")
    return out, end


def decode_tensor(view: memoryview, pos: int, n: int, segment_table: np.ndarray, segment_length: int,
                  tables: rans.Tables, device) -> tuple[torch.Tensor, int, int]:
    """(symbols as an integer tensor on `device`, end position, largest |symbol|): the Triton kernel on CUDA,
    numba on the CPU."""
    if torch.device(device).type == "cuda":
        values, end = triton_decode(view, pos, n, segment_table, segment_length, tables, device)
        return values, end, int(values.abs().max()) if n else 0
    values, end, peak = rans.decode_with_peak(view, pos, n, segment_table, segment_length, tables)
    return torch.from_numpy(values), end, peak
