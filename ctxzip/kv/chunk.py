"""One chunk of tokens <-> one frame payload.

A chunk is a tensor `[rows, tokens, head_dim]` with one row per (layer, key/value, batch x head).

Lossy chunks: per-channel means and one step per row (level step x layer scale x the row's RMS),
integer symbols q = round((x - mean) / step). In each (row, channel group) the encoder codes either
q directly or, where it pays, the anchors and the deltas to them inside groups of tokens
(`quant.anchor_delta`); every segment gets its own symbol table (`entropy.py`). The first `sink`
tokens of the whole cache are kept in 16 bits, losslessly coded (attention sinks draw much of the
attention mass, so their errors cost the most). With channel gains (`channels.py`) each channel is
multiplied by its gain before quantization and divided by it after, so channels that matter more
get finer steps; the gains' byte codes travel in the chunk.

Lossless chunks: each value's bit pattern; its top byte (sign, exponent) is entropy-coded with a
table per (row, channel group), for 4-byte values the second byte with a table per row; the
remaining mantissa bytes are close to uniform and are stored raw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from ctxzip.kv import kernels, lossless as lossless_v2, transform_chunk
from ctxzip.kv.channels import gain_codes, gains_from_codes
from ctxzip.kv.entropy import decode_segments, encode_segments
from ctxzip.kv.format import KVFormatError
from ctxzip.kv.levels import LEVELS
from ctxzip.kv.quant import head_statistics

_CHUNK = struct.Struct("<IIBBBBH")  # token_start, n_tokens, level, flags, channel_group, anchor_group, sink
FLAG_LOSSLESS, FLAG_GAINS = 1, 2
FLAG_TRANSFORM, FLAG_EXPONENT = 4, 8  # version 2: transform-coded chunk; lossless chunk with modelled exponents


@dataclass(frozen=True)
class StreamContext:
    """What a version 2 chunk needs beyond its payload: geometry, the transform, positions."""

    version: int
    n_layers: int
    batch: int
    heads: int
    transform: object = None  # KVTransform
    position_offset: int = 0
MAX_SYMBOL_RANGE = 4000  # steps are widened if a row would need more symbols than this

@dataclass(frozen=True)
class ChunkInfo:
    token_start: int
    n_tokens: int
    level: int


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


# ---- lossless: byte planes ------------------------------------------------------------------

def _byte_planes(x: torch.Tensor) -> np.ndarray:
    """[bytes, R, T, D] uint8, most significant byte first."""
    raw = x.contiguous().view(torch.uint8).numpy().reshape(*x.shape, x.element_size())
    return np.ascontiguousarray(np.moveaxis(raw[..., ::-1], -1, 0))  # little endian -> MSB first


def _encode_lossless(x: torch.Tensor, group: int) -> bytes:
    planes = _byte_planes(x)
    rows, tokens, dim = x.shape
    top = planes[0].reshape(rows, tokens, dim // group, group).transpose(0, 2, 1, 3).reshape(rows * (dim // group), -1)
    segments = list(top.astype(np.int32))
    coded = 2 if len(planes) == 4 else 1  # fp32: the second byte still holds an exponent bit
    if coded == 2:
        segments += list(planes[1].reshape(rows, -1).astype(np.int32))
    return encode_segments(segments) + planes[coded:].tobytes()


def _decode_lossless(view: memoryview, shape, dtype: torch.dtype, group: int) -> tuple[torch.Tensor, int]:
    rows, tokens, dim = shape
    n_bytes = _element_size(dtype)
    coded = 2 if n_bytes == 4 else 1
    sizes = [tokens * group] * (rows * (dim // group)) + [tokens * dim] * (rows * (coded - 1))
    symbols, used = decode_segments(view, sizes)
    planes = np.empty((n_bytes, rows, tokens, dim), dtype=np.uint8)
    top = symbols[: rows * tokens * dim].reshape(rows, dim // group, tokens, group)
    planes[0] = top.transpose(0, 2, 1, 3).reshape(rows, tokens, dim)
    if coded == 2:
        planes[1] = symbols[rows * tokens * dim:].reshape(rows, tokens, dim)
    raw_size = (n_bytes - coded) * rows * tokens * dim
    if len(view) < used + raw_size:
        raise KVFormatError("lossless chunk too short for its raw mantissa bytes")
    planes[coded:] = np.frombuffer(view, np.uint8, raw_size, used).reshape(n_bytes - coded, rows, tokens, dim)
    little_endian = np.ascontiguousarray(np.moveaxis(planes, 0, -1)[..., ::-1])
    tensor = torch.from_numpy(little_endian.reshape(rows, tokens, dim * n_bytes)).view(dtype)
    return tensor, used + raw_size


# ---- lossy: quantization --------------------------------------------------------------------

def _row_steps(x: torch.Tensor, rms: torch.Tensor, relative_step: float, layer_scales: torch.Tensor) -> torch.Tensor:
    """Step per row: relative step x (layer, key/value) scale x RMS, widened to bound the alphabet."""
    per_layer_kind = x.shape[0] // layer_scales.numel()
    step = rms * relative_step * layer_scales.reshape(-1).repeat_interleave(per_layer_kind)
    spread = (x.float().amax(dim=(1, 2)) - x.float().amin(dim=(1, 2))) / MAX_SYMBOL_RANGE
    return torch.maximum(step, torch.maximum(spread, torch.full_like(step, 1e-30))).float()


def _token_order(tokens: int, anchor_group: int) -> tuple[torch.Tensor, int]:
    """Anchors first, then the other tokens: the order delta-coded segments are stored in."""
    is_anchor = torch.arange(tokens) % anchor_group == 0
    order = torch.cat([torch.nonzero(is_anchor).flatten(), torch.nonzero(~is_anchor).flatten()])
    return order, int(is_anchor.sum())


def encode_exact_chunk(x: torch.Tensor, token_start: int, level_id: int, rows_per_kind: int,
                       sixteen_bit: bool = False) -> bytes:
    """Version 2 lossless chunk (modelled exponents, `lossless.py`) of x [R, T, D].

    With `sixteen_bit`, a float32 x that float16 holds without overflow is coded as float16 (the
    sink and recent tokens of lossy levels, as CacheGen keeps them); byte 10 of the chunk header says so.
    """
    x = x.cpu()
    as_half = sixteen_bit and x.dtype == torch.float32 and bool((x.abs() < 65504).all())
    body = lossless_v2.encode_body(x.half() if as_half else x, rows_per_kind)
    return _CHUNK.pack(token_start, x.shape[1], level_id, FLAG_EXPONENT, int(as_half), 0, 0) + body


def encode_transform_chunk(x: torch.Tensor, token_start: int, level_id: int, context: StreamContext) -> bytes:
    """Version 2 transform chunk of x [R, T, D] (see `transform_chunk.py`)."""
    rows, tokens, dim = x.shape
    rows6 = x.reshape(context.n_layers, 2, context.batch, context.heads, tokens, dim)
    positions = torch.arange(tokens) + token_start + context.position_offset
    body = transform_chunk.encode_body(rows6, positions, context.transform, level_id - _first_transform_level())
    return _CHUNK.pack(token_start, tokens, level_id, FLAG_TRANSFORM, 0, 0, 0) + body


def _first_transform_level() -> int:
    from ctxzip.kv.levels import TRANSFORM_LEVEL_NUMBERS

    return TRANSFORM_LEVEL_NUMBERS[0]


def encode_chunk(x: torch.Tensor, token_start: int, level_id: int, layer_scales: torch.Tensor, sink: int,
                 gains: torch.Tensor | None = None) -> bytes:
    """Payload of a chunk frame for x [R, T, D]; `sink` leading tokens are kept in 16 bits.

    `layer_scales` [layers, 2] multiplies the level's step per (layer, key/value); `gains` [R, D]
    (optional) divides it per channel.
    """
    level = LEVELS[level_id]
    rows, tokens, dim = x.shape
    group = level.channel_group if dim % level.channel_group == 0 else dim
    x = x.cpu()
    if level.lossless:
        return _CHUNK.pack(token_start, tokens, level_id, FLAG_LOSSLESS, group, 0, 0) + _encode_lossless(x, group)
    sink = min(sink, tokens)
    flags = FLAG_GAINS if gains is not None else 0
    parts = [_CHUNK.pack(token_start, tokens, level_id, flags, group, level.anchor_group, sink)]
    if sink:
        parts.append(_encode_lossless(_as_16_bit(x[:, :sink]), group))
    body, n = x[:, sink:], tokens - sink
    if n and gains is not None:
        codes = gain_codes(gains.reshape(rows, dim))
        parts.append(codes.numpy().tobytes())
        body = body.float() * gains_from_codes(codes)[:, None, :]  # exactly what the decoder divides by
    if n:
        mean, rms = head_statistics(body)
        step = _row_steps(body, rms, level.step, layer_scales)
        q = kernels.quantize(body, mean, step)
        d = kernels.anchor_delta(q, level.anchor_group)
        n_groups = dim // group
        qg = q.reshape(rows, n, n_groups, group).permute(0, 2, 1, 3)
        order, n_anchors = _token_order(n, level.anchor_group)
        dg = d.reshape(rows, n, n_groups, group).permute(0, 2, 1, 3)[:, :, order]
        # deltas pay where they spread less than the symbols themselves (a proxy for their entropy)
        if n > n_anchors:
            spread = qg.float().std(dim=(2, 3), correction=0)
            use_delta = dg[:, :, n_anchors:].float().std(dim=(2, 3), correction=0) < 0.9 * spread
        else:
            use_delta = torch.zeros(rows, n_groups, dtype=torch.bool)
        chosen = torch.where(use_delta[:, :, None, None], dg, qg).reshape(rows * n_groups, n * group).numpy()
        cut = n_anchors * group
        segments = []
        for flat, delta in zip(chosen, use_delta.flatten().tolist()):
            segments += [flat[:cut], flat[cut:]] if delta else [flat]
        parts += [mean.numpy().astype("<f2").tobytes(), step.numpy().astype("<f4").tobytes(),
                  use_delta.numpy().astype(np.uint8).tobytes(), encode_segments(segments)]
    return b"".join(parts)


def _as_16_bit(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float16, torch.bfloat16) else x.to(torch.float16)


def chunk_span(payload: bytes) -> tuple[int, int]:
    """(token_start, n_tokens) from a chunk payload's fixed header."""
    if len(payload) < _CHUNK.size:
        raise KVFormatError("chunk frame too short")
    return _CHUNK.unpack_from(payload)[:2]


def _decode_v2_chunk(view: memoryview, info: ChunkInfo, flags: int, rows: int, dim: int, dtype: torch.dtype,
                     device: str, context: StreamContext, out6: torch.Tensor | None = None) -> torch.Tensor | None:
    pos = _CHUNK.size
    if flags == FLAG_EXPONENT:
        coded = torch.float16 if view[10] == 1 else dtype
        tensor, pos = lossless_v2.decode_body(view, pos, (rows, info.n_tokens, dim), coded, context.batch * context.heads)
        _expect_end(pos, len(view))
        return tensor.to(device, dtype)
    level = LEVELS[info.level]
    if not level.transform:
        raise KVFormatError(f"transform chunk names level {info.level}, which is not a transform level")
    transform = context.transform
    if transform is None:
        raise KVFormatError("KV stream has transform-coded chunks but no transform was given to the decoder")
    level_index = info.level - _first_transform_level()
    if level_index >= transform.n_levels:
        raise KVFormatError(f"transform {transform.name} has no level {info.level}")
    given = out6 is not None
    if not given:
        out6 = torch.empty((context.n_layers, 2, context.batch, context.heads, info.n_tokens, dim), dtype=dtype,
                           device=device)
    positions = torch.arange(info.n_tokens) + info.token_start + context.position_offset
    pos = transform_chunk.decode_body(view, pos, out6, positions, transform, level_index)
    _expect_end(pos, len(view))
    return None if given else out6.reshape(rows, info.n_tokens, dim)


def decode_chunk(payload: bytes, rows: int, dim: int, dtype: torch.dtype, device: str,
                 context: StreamContext | None = None, out6: torch.Tensor | None = None) -> tuple[ChunkInfo, torch.Tensor | None]:
    """(info, tensor [R, T, D] in `dtype` on `device`) from a chunk frame payload.

    A transform chunk given `out6` ([L, 2, B, H, T, D], e.g. a view of the decoder's buffer) is decoded
    straight into it and returns None for the tensor."""
    if len(payload) < _CHUNK.size:
        raise KVFormatError("chunk frame too short")
    token_start, tokens, level_id, flags, group, anchor_group, sink = _CHUNK.unpack_from(payload)
    if flags in (FLAG_TRANSFORM, FLAG_EXPONENT):
        if context is None or context.version < 2:
            raise KVFormatError(f"chunk flags {flags} need a version 2 stream")
        half = flags == FLAG_EXPONENT and group == 1 and dtype == torch.float32
        if level_id not in LEVELS or tokens == 0 or (group and not half) or anchor_group or sink:
            raise KVFormatError(f"chunk frame has invalid parameters (level {level_id}, flags {flags})")
        info = ChunkInfo(token_start, tokens, level_id)
        return info, _decode_v2_chunk(memoryview(payload), info, flags, rows, dim, dtype, device, context,
                                      out6 if flags == FLAG_TRANSFORM else None)
    lossless = flags & FLAG_LOSSLESS
    if (level_id not in LEVELS or group == 0 or dim % group or sink > tokens or tokens == 0 or flags > 3
            or (not lossless and anchor_group == 0)):
        raise KVFormatError(f"chunk frame has invalid parameters (level {level_id}, group {group}, sink {sink})")
    info = ChunkInfo(token_start, tokens, level_id)
    view = memoryview(payload)
    pos = _CHUNK.size
    if lossless:
        tensor, used = _decode_lossless(view[pos:], (rows, tokens, dim), dtype, group)
        _expect_end(pos + used, len(payload))
        return info, tensor.to(device)
    pieces = []
    if sink:
        sink_dtype = dtype if dtype in (torch.float16, torch.bfloat16) else torch.float16
        tensor, used = _decode_lossless(view[pos:], (rows, sink, dim), sink_dtype, group)
        pos += used
        pieces.append(tensor.to(device, dtype))
    n, n_groups = tokens - sink, dim // group
    gains = None
    if n and flags & FLAG_GAINS:
        if len(view) < pos + rows * dim:
            raise KVFormatError("chunk frame too short for its channel gains")
        gains = gains_from_codes(torch.from_numpy(np.frombuffer(view, np.uint8, rows * dim, pos).copy()))
        gains = gains.reshape(rows, dim).to(device)
        pos += rows * dim
    if n:
        try:
            mean = torch.from_numpy(np.frombuffer(view, "<f2", rows * dim, pos).copy()).reshape(rows, dim)
            pos += 2 * rows * dim
            step = torch.from_numpy(np.frombuffer(view, "<f4", rows, pos).copy())
            pos += 4 * rows
            use_delta = np.frombuffer(view, np.uint8, rows * n_groups, pos).astype(bool)
            pos += rows * n_groups
        except ValueError:
            raise KVFormatError("chunk frame too short for its quantization parameters") from None
        order, n_anchors = _token_order(n, anchor_group)
        cut = n_anchors * group
        sizes = []
        for delta in use_delta.tolist():
            sizes += [cut, n * group - cut] if delta else [n * group]
        symbols, used = decode_segments(view[pos:], sizes)
        _expect_end(pos + used, len(payload))
        grouped = torch.from_numpy(symbols).reshape(rows * n_groups, n, group).to(device)
        if use_delta.any():
            picked = torch.from_numpy(np.flatnonzero(use_delta)).to(device)
            natural = torch.empty_like(grouped[picked])
            natural[:, order.to(device)] = grouped[picked]
            grouped[picked] = kernels.undo_anchor_delta(natural, anchor_group)
        q = grouped.reshape(rows, n_groups, n, group).permute(0, 2, 1, 3).reshape(rows, n, dim)
        values = kernels.dequantize(q, mean.to(device), step.to(device))
        pieces.append((values if gains is None else values / gains[:, None, :]).to(dtype))
    return info, torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]


def _expect_end(pos: int, size: int) -> None:
    if pos != size:
        raise KVFormatError(f"chunk frame has {size - pos} unexpected trailing bytes")
