"""Torch reference math for the KV codec: uniform quantization and anchor deltas.

Tensors are laid out as rows of `[rows, tokens, head_dim]`, one row per (layer, key/value, head).
This file is the definition the Triton kernels in `kernels.py` must match bit for bit, and it is
the path that runs on the CPU.

Rounding is `floor(y + 0.5)` rather than torch.round (half to even) so the kernels can match it
exactly with the same two float ops.
"""

from __future__ import annotations

import torch


def quantize(x: torch.Tensor, mean: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """int32 symbols q = floor((x - mean) / step + 0.5); x [R, T, D], mean [R, D], step [R]."""
    y = (x.float() - mean.float()[:, None, :]) / step.float()[:, None, None]
    return torch.floor(y + 0.5).to(torch.int32)


def dequantize(q: torch.Tensor, mean: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """float32 x = q * step + mean, the inverse of `quantize` up to half a step."""
    return q.float() * step.float()[:, None, None] + mean.float()[:, None, :]


def anchor_delta(q: torch.Tensor, group: int) -> torch.Tensor:
    """Each token minus the first token (the anchor) of its group of `group` tokens; anchors stay.

    Works on integer symbols, so the deltas are exact and errors never accumulate.
    """
    t = torch.arange(q.shape[1], device=q.device)
    anchor = (t - t % group)
    delta = q - q[:, anchor, :]
    return torch.where((t % group == 0)[None, :, None], q, delta)


def undo_anchor_delta(d: torch.Tensor, group: int) -> torch.Tensor:
    """Inverse of `anchor_delta`."""
    t = torch.arange(d.shape[1], device=d.device)
    anchor = (t - t % group)
    restored = d + d[:, anchor, :]
    return torch.where((t % group == 0)[None, :, None], d, restored)


def head_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel means [R, D] and the RMS around them per row [R], both rounded to fp16.

    Rounding here, before use, makes the encoder quantize with exactly the numbers the decoder reads.
    """
    mean = x.float().mean(dim=1).half()
    rms = (x.float() - mean.float()[:, None, :]).pow(2).mean(dim=(1, 2)).sqrt()
    return mean, rms
