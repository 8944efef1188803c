"""Transform-coded chunk bodies (stream version 2, chunk flag 4): coefficients -> rANS.

For each (layer group, key/value) of the transform, the chunk's tokens become coefficients
(`transform.py`), each kept component is quantized with its calibrated step, q = floor(c / step + 1/2),
and coded with the Laplace table whose scale is closest to that component's mean |c| / step in this
chunk (one byte per kept component, `laplace.py`). All components of a chunk share one interleaved
rANS block, component after component, tokens (batch-major) inside.

    body = scale_index:u8[kept components of every group and kind] rans_block
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ctxzip.kv import laplace, rans
from ctxzip.kv.format import KVFormatError
from ctxzip.kv.rans_triton import decode_tensor
from ctxzip.kv.rope import rotate
from ctxzip.kv.transform import KVTransform

BF16_EXACT = 256  # integers up to this are exact in bfloat16


@functools.cache
def _cpu_has_amx_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return "amx_bf16" in f.read(200_000)
    except OSError:
        return False


def _synthesis_dtype(device: torch.device, peak: int) -> torch.dtype:
    """bfloat16 products on CPUs with AMX matrix units (~6x faster than float32 here) when every symbol is
    exact in bfloat16; float32 otherwise. The choice depends only on the machine and the data."""
    if device.type == "cpu" and _cpu_has_amx_bf16() and peak <= BF16_EXACT:
        return torch.bfloat16
    return torch.float32


def _group_matrix(rows6: torch.Tensor, layers: range, kind: int) -> torch.Tensor:
    """[B*T, G*H*D] from rows6 [L, 2, B, H, T, D] (tokens as samples, layers and heads as features)."""
    part = rows6[layers.start:layers.stop, kind]  # [G, B, H, T, D]
    g, b, h, t, d = part.shape
    return part.permute(1, 3, 0, 2, 4).reshape(b * t, g * h * d)


def encode_body(rows6: torch.Tensor, positions: torch.Tensor, transform: KVTransform, level_index: int) -> bytes:
    """Body of a transform chunk for rows6 [L, 2, B, H, T, D] at token `positions` [T]."""
    rows6 = rows6.float()
    if transform.rope is not None:
        rows6 = rows6.clone()
        rows6[:, 0] = rotate(rows6[:, 0], positions, transform.rope, inverse=True)
    scale_bytes, symbols, segment_tables = [], [], []
    samples = rows6.shape[2] * rows6.shape[4]
    for g, kinds in enumerate(transform.groups):
        layers = transform.group_layers(g)
        for kind, part in enumerate(kinds):
            mean, analysis, steps = part.tensors(level_index, rows6.device)
            if not steps.numel():
                continue
            coefficients = (_group_matrix(rows6, layers, kind) - mean) @ analysis
            scaled = coefficients / steps
            q = torch.floor(scaled + 0.5).to(torch.int64).T.contiguous()  # [kept, samples]
            index = laplace.index_of_scale(scaled.abs().mean(0).double().cpu().numpy())
            scale_bytes.append(index)
            symbols.append(q.cpu().numpy().reshape(-1))
            segment_tables.append(index.astype(np.int64))
    if not symbols:
        return b""
    block = rans.encode(np.concatenate(symbols), np.concatenate(segment_tables), samples, laplace.tables())
    return np.concatenate(scale_bytes).tobytes() + block


def decode_body(view: memoryview, pos: int, out6: torch.Tensor, positions: torch.Tensor, transform: KVTransform,
                level_index: int) -> int:
    """Decode a body at `pos` into out6 [L, 2, B, H, T, D] (written in place); returns the end position."""
    device = out6.device
    batch, tokens = out6.shape[2], out6.shape[4]
    samples = batch * tokens
    parts = [(g, kind, part) for g, kinds in enumerate(transform.groups) for kind, part in enumerate(kinds)]
    counts = [part.kept(level_index).size for _, _, part in parts]
    total = sum(counts)
    if len(view) < pos + total:
        raise KVFormatError("transform chunk too short for its scale indices")
    index = np.frombuffer(view, np.uint8, total, pos)
    if (index >= laplace.N_SCALES).any():
        raise KVFormatError("transform chunk has an unknown coefficient scale")
    pos += total
    symbols, peak = torch.zeros(0, dtype=torch.int32), 0
    if total:
        symbols, pos, peak = decode_tensor(view, pos, total * samples, index.astype(np.int64), samples,
                                           laplace.tables(), device)
    dtype = _synthesis_dtype(device, peak)
    at = 0
    for (g, kind, part), count in zip(parts, counts):
        layers = transform.group_layers(g)
        mean = part.tensors(level_index, device)[0]
        if count:
            q = symbols[at * samples:(at + count) * samples].reshape(count, samples)
            x = torch.addmm(mean.to(dtype), q.T.to(dtype), part.synthesis(level_index, device, dtype)).float()
        else:
            x = mean.expand(samples, -1)
        at += count
        n_layers = layers.stop - layers.start
        block = x.reshape(batch, tokens, n_layers, transform.n_heads, transform.head_dim)
        if kind == 0 and transform.rope is not None:  # redo RoPE before the one copy into the cache layout
            block = rotate(block, positions, transform.rope, token_dim=1)
        out6[layers.start:layers.stop, kind] = block.permute(2, 0, 3, 1, 4)
    return pos
