"""Triton kernels for quantize, dequantize and anchor deltas, used for CUDA tensors.

Each kernel computes exactly what its torch reference in `quant.py` computes, on `[R, T, D]`
row-major tensors; CPU tensors go to the torch reference. Tests run the kernels on the CPU under
TRITON_INTERPRET=1 (set before triton is imported) and require results equal to the reference.
Triton is imported lazily: importing the codec must not need it.
"""

from __future__ import annotations

import functools

import torch

from ctxzip.kv import quant

BLOCK = 1024


@functools.cache
def _kernels():
    import triton
    import triton.language as tl

    @triton.jit
    def quantize_kernel(x_ptr, mean_ptr, step_ptr, q_ptr, row_size, dim, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = idx < row_size
        x = tl.load(x_ptr + row * row_size + idx, mask=inside, other=0.0).to(tl.float32)
        mean = tl.load(mean_ptr + row * dim + idx % dim, mask=inside, other=0.0).to(tl.float32)
        step = tl.load(step_ptr + row).to(tl.float32)
        y = (x - mean) / step
        tl.store(q_ptr + row * row_size + idx, tl.floor(y + 0.5).to(tl.int32), mask=inside)

    @triton.jit
    def dequantize_kernel(q_ptr, mean_ptr, step_ptr, x_ptr, row_size, dim, BLOCK: tl.constexpr):
        row = tl.program_id(0)
        idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = idx < row_size
        q = tl.load(q_ptr + row * row_size + idx, mask=inside, other=0).to(tl.float32)
        mean = tl.load(mean_ptr + row * dim + idx % dim, mask=inside, other=0.0).to(tl.float32)
        step = tl.load(step_ptr + row).to(tl.float32)
        scaled = q * step
        tl.store(x_ptr + row * row_size + idx, scaled + mean, mask=inside)

    @triton.jit
    def delta_kernel(q_ptr, out_ptr, row_size, dim, group, SIGN: tl.constexpr, BLOCK: tl.constexpr):
        # SIGN = -1: anchor deltas; SIGN = +1: undo them. Anchors themselves pass through.
        row = tl.program_id(0)
        idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = idx < row_size
        token = idx // dim
        offset_in_group = token % group
        anchor_idx = (token - offset_in_group) * dim + idx % dim
        value = tl.load(q_ptr + row * row_size + idx, mask=inside, other=0)
        anchor = tl.load(q_ptr + row * row_size + anchor_idx, mask=inside, other=0)
        out = tl.where(offset_in_group == 0, value, value + SIGN * anchor)
        tl.store(out_ptr + row * row_size + idx, out, mask=inside)

    return quantize_kernel, dequantize_kernel, delta_kernel


def _grid(x: torch.Tensor):
    rows, tokens, dim = x.shape
    return (rows, max(1, -(-tokens * dim // BLOCK)))


def triton_quantize(x, mean, step):
    x, mean, step = x.contiguous(), mean.contiguous(), step.contiguous()
    q = torch.empty(x.shape, dtype=torch.int32, device=x.device)
    if x.numel():
        _kernels()[0][_grid(x)](x, mean, step, q, x.shape[1] * x.shape[2], x.shape[2], BLOCK=BLOCK)
    return q


def triton_dequantize(q, mean, step):
    q, mean, step = q.contiguous(), mean.float().contiguous(), step.float().contiguous()
    x = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    if q.numel():
        _kernels()[1][_grid(q)](q, mean, step, x, q.shape[1] * q.shape[2], q.shape[2], BLOCK=BLOCK)
    return x


def _triton_delta(q, group, sign):
    q = q.contiguous()
    out = torch.empty_like(q)
    if q.numel():
        _kernels()[2][_grid(q)](q, out, q.shape[1] * q.shape[2], q.shape[2], group, SIGN=sign, BLOCK=BLOCK)
    return out


def triton_anchor_delta(q, group):
    return _triton_delta(q, group, -1)


def triton_undo_anchor_delta(d, group):
    return _triton_delta(d, group, 1)


def _use_triton(t: torch.Tensor) -> bool:
    return t.is_cuda


def quantize(x, mean, step):
    return triton_quantize(x, mean, step) if _use_triton(x) else quant.quantize(x, mean, step)


def dequantize(q, mean, step):
    return triton_dequantize(q, mean, step) if _use_triton(q) else quant.dequantize(q, mean, step)


def anchor_delta(q, group):
    return triton_anchor_delta(q, group) if _use_triton(q) else quant.anchor_delta(q, group)


def undo_anchor_delta(d, group):
    return triton_undo_anchor_delta(d, group) if _use_triton(d) else quant.undo_anchor_delta(d, group)
