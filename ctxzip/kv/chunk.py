"""One chunk of tokens <-> one frame payload.

A chunk is a tensor `[rows, tokens, head_dim]` with one row per (layer, key/value, batch x head).

Lossy chunks: per-channel means and one step per row (from the level and the row's RMS), integer
symbols q = round((x - mean) / step); in each (row, channel group) the encoder codes either q
directly or, where it pays, anchor + deltas inside groups of tokens (`quant.anchor_delta`); every
(row, channel group) segment gets its own symbol table (`entropy.py`). The first `sink` tokens of
the whole cache are kept exactly in 16 bits (attention sinks carry much of the attention mass).

Lossless chunks: the bit pattern of every value split into bytes; the top byte (sign, exponent,
first mantissa bits) gets a table per (row, channel group), the lower bytes one table per row.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from ctxzip.kv import kernels
from ctxzip.kv.entropy import decode_segments, encode_segments
from ctxzip.kv.format import KVFormatError
from ctxzip.kv.levels import LEVELS, Level
from ctxzip.kv.quant import head_statistics

_CHUNK = struct.Struct("<IIBBBBH")  # token_start, n_tokens, level, lossless, channel_group, anchor_group, sink
MAX_SYMBOL_RANGE = 4000  # steps are widened if a row would need more symbols than this

_BITS_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


@dataclass(frozen=True)
class ChunkInfo:
    token_start: int
    n_tokens: int
    level: int


# ---- lossless: byte planes ------------------------------------------------------------------

def _byte_planes(x: torch.Tensor) -> list[np.ndarray]:
    """Bytes of each value's bit pattern, most significant first, each [R, T, D] int32."""
    bits = x.contiguous().view(_BITS_VIEW[x.dtype]).numpy().astype(np.int64)
    n_bytes = x.element_size()
    return [((bits >> (8 * b)) & 0xFF).astype(np.int32) for b in reversed(range(n_bytes))]


def _lossless_segments(x: torch.Tensor, group: int) -> list[np.ndarray]:
    planes = _byte_planes(x)
    rows, tokens, dim = x.shape
    top = planes[0].reshape(rows, tokens, dim // group, group).transpose(0, 2, 1, 3)
    segments = [top[r, g].ravel() for r in range(rows) for g in range(dim // group)]
    segments += [plane[r].ravel() for plane in planes[1:] for r in range(rows)]
    return segments


def _lossless_sizes(rows: int, tokens: int, dim: int, group: int, n_bytes: int) -> list[int]:
    return [tokens * group] * (rows * (dim // group)) + [tokens * dim] * (rows * (n_bytes - 1))


def _from_lossless_segments(segments: list[np.ndarray], shape, dtype: torch.dtype, group: int) -> torch.Tensor:
    rows, tokens, dim = shape
    n_groups = dim // group
    n_bytes = torch.empty(0, dtype=dtype).element_size()
    top = np.stack(segments[: rows * n_groups]).reshape(rows, n_groups, tokens, group)
    bits = top.transpose(0, 2, 1, 3).reshape(rows, tokens, dim).astype(np.uint32)
    rest = segments[rows * n_groups:]
    for b in range(n_bytes - 1):
        plane = np.stack(rest[b * rows:(b + 1) * rows]).reshape(rows, tokens, dim).astype(np.uint32)
        bits = (bits << 8) | plane
    unsigned, signed = (np.uint16, np.int16) if n_bytes == 2 else (np.uint32, np.int32)
    return torch.from_numpy(bits.astype(unsigned).view(signed)).view(dtype)


# ---- lossy: quantization --------------------------------------------------------------------

def _row_steps(x: torch.Tensor, rms: torch.Tensor, level: Level, n_layers: int) -> torch.Tensor:
    rows = x.shape[0]
    per_layer = rows // n_layers
    layer_scale = torch.tensor(level.step_scales(n_layers)).repeat_interleave(per_layer)
    kv_scale = torch.tensor([level.key_step, level.value_step]).repeat_interleave(per_layer // 2).repeat(n_layers)
    step = rms * layer_scale * kv_scale
    spread = (x.float().amax(dim=(1, 2)) - x.float().amin(dim=(1, 2))) / MAX_SYMBOL_RANGE
    return torch.maximum(step, torch.maximum(spread, torch.full_like(step, 1e-30))).float()


def _delta_pays(q: torch.Tensor, d: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """[R, G] booleans: code deltas where their spread is below that of the symbols themselves."""
    spread_q = q.float().std(dim=(2, 3), correction=0)
    spread_d = d[:, :, ~anchors].float().std(dim=(2, 3), correction=0) if (~anchors).any() else spread_q
    return spread_d < 0.9 * spread_q


def encode_chunk(x: torch.Tensor, token_start: int, level_id: int, n_layers: int, sink: int) -> bytes:
    """Payload of a chunk frame for x [R, T, D]; `sink` leading tokens are kept exactly."""
    level = LEVELS[level_id]
    rows, tokens, dim = x.shape
    group = level.channel_group if dim % level.channel_group == 0 else dim
    x = x.cpu()
    if level.lossless:
        head = _CHUNK.pack(token_start, tokens, level_id, 1, group, 0, 0)
        return head + encode_segments(_lossless_segments(x, group))
    sink = min(sink, tokens)
    parts = [_CHUNK.pack(token_start, tokens, level_id, 0, group, level.anchor_group, sink)]
    if sink:
        parts.append(encode_segments(_lossless_segments(_as_16_bit(x[:, :sink]), group)))
    body = x[:, sink:]
    n = tokens - sink
    if n:
        mean, rms = head_statistics(body)
        step = _row_steps(body, rms, level, n_layers)
        q = kernels.quantize(body, mean, step)
        d = kernels.anchor_delta(q, level.anchor_group)
        n_groups = dim // group
        qg = q.reshape(rows, n, n_groups, group).permute(0, 2, 1, 3)
        dg = d.reshape(rows, n, n_groups, group).permute(0, 2, 1, 3)
        anchors = torch.arange(n) % level.anchor_group == 0
        use_delta = _delta_pays(qg, dg, anchors)
        qg, dg, flags = qg.numpy(), dg.numpy(), use_delta.numpy()
        a_mask = anchors.numpy()
        segments = []
        for r in range(rows):
            for g in range(n_groups):
                if flags[r, g]:
                    segments += [dg[r, g, a_mask].ravel(), dg[r, g, ~a_mask].ravel()]
                else:
                    segments.append(qg[r, g].ravel())
        parts += [mean.numpy().astype("<f2").tobytes(), step.numpy().astype("<f4").tobytes(),
                  flags.astype(np.uint8).tobytes(), encode_segments(segments)]
    return b"".join(parts)


def _as_16_bit(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float16, torch.bfloat16) else x.to(torch.float16)


def decode_chunk(payload: bytes, rows: int, dim: int, dtype: torch.dtype, device: str,
                 n_layers: int) -> tuple[ChunkInfo, torch.Tensor]:
    """(info, tensor [R, T, D] in `dtype` on `device`) from a chunk frame payload."""
    if len(payload) < _CHUNK.size:
        raise KVFormatError("chunk frame too short")
    token_start, tokens, level_id, lossless, group, anchor_group, sink = _CHUNK.unpack_from(payload)
    if level_id not in LEVELS or group == 0 or dim % group or sink > tokens or (not lossless and anchor_group == 0):
        raise KVFormatError(f"chunk frame has invalid parameters (level {level_id}, group {group}, sink {sink})")
    info = ChunkInfo(token_start, tokens, level_id)
    view = memoryview(payload)
    pos = _CHUNK.size
    n_groups = dim // group
    if lossless:
        segments, used = decode_segments(view[pos:], _lossless_sizes(rows, tokens, dim, group, torch.empty(0, dtype=dtype).element_size()))
        _expect_end(pos + used, len(payload))
        return info, _from_lossless_segments(segments, (rows, tokens, dim), dtype, group).to(device)
    pieces = []
    if sink:
        sink_dtype = dtype if dtype in (torch.float16, torch.bfloat16) else torch.float16
        segments, used = decode_segments(view[pos:], _lossless_sizes(rows, sink, dim, group, 2))
        pos += used
        pieces.append(_from_lossless_segments(segments, (rows, sink, dim), sink_dtype, group).to(device, dtype))
    n = tokens - sink
    if n:
        try:
            mean = torch.from_numpy(np.frombuffer(view, "<f2", rows * dim, pos).copy()).reshape(rows, dim)
            pos += 2 * rows * dim
            step = torch.from_numpy(np.frombuffer(view, "<f4", rows, pos).copy())
            pos += 4 * rows
            flags = np.frombuffer(view, np.uint8, rows * n_groups, pos).reshape(rows, n_groups).astype(bool)
            pos += rows * n_groups
        except ValueError:
            raise KVFormatError("chunk frame too short for its quantization parameters") from None
        anchors = np.arange(n) % anchor_group == 0
        n_anchors = int(anchors.sum())
        sizes = []
        for r in range(rows):
            for g in range(n_groups):
                sizes += [n_anchors * group, (n - n_anchors) * group] if flags[r, g] else [n * group]
        segments, used = decode_segments(view[pos:], sizes)
        _expect_end(pos + used, len(payload))
        symbols = np.empty((rows, n_groups, n, group), dtype=np.int32)
        it = iter(segments)
        for r in range(rows):
            for g in range(n_groups):
                if flags[r, g]:
                    symbols[r, g, anchors] = next(it).reshape(n_anchors, group)
                    symbols[r, g, ~anchors] = next(it).reshape(n - n_anchors, group)
                else:
                    symbols[r, g] = next(it).reshape(n, group)
        q = torch.from_numpy(symbols).to(device).permute(0, 2, 1, 3).reshape(rows, n, dim)
        channel_flags = torch.from_numpy(flags).to(device).repeat_interleave(group, dim=1)[:, None, :]
        q = torch.where(channel_flags, kernels.undo_anchor_delta(q, anchor_group), q)
        pieces.append(kernels.dequantize(q, mean.to(device), step.to(device)).to(dtype))
    return info, torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]


def _expect_end(pos: int, size: int) -> None:
    if pos != size:
        raise KVFormatError(f"chunk frame has {size - pos} unexpected trailing bytes")
