"""Rotary position embeddings, undone on keys before the transform and redone after decoding.

RoPE rotates each key channel pair by an angle that grows with the token's position, which hides
the low-rank structure a calibrated transform relies on (KVTC undoes it for the same reason).
The layout is transformers' `rotate_half` one: the first `rotary_dim` channels form pairs (i, i + rotary_dim/2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Rope:
    inv_freq: np.ndarray  # [rotary_dim / 2], float32
    scaling: float = 1.0  # transformers' attention_scaling (cos and sin are multiplied by it)

    @property
    def rotary_dim(self) -> int:
        return 2 * self.inv_freq.size

    def cos_sin(self, positions: torch.Tensor, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.double()[:, None] * torch.from_numpy(self.inv_freq).double()[None, :]
        angles = torch.cat([freqs, freqs], dim=-1)
        return ((angles.cos() * self.scaling).float().to(device), (angles.sin() * self.scaling).float().to(device))


def rotate(keys: torch.Tensor, positions: torch.Tensor, rope: Rope, inverse: bool = False,
           token_dim: int = -2) -> torch.Tensor:
    """keys [..., T, ..., D] (float32) rotated to `positions` [T] (or back, with inverse=True); a new tensor.

    `token_dim` says which dimension holds the tokens (the decoder rotates [B, T, layers, heads, D] blocks).
    Pairs are rotated half by half without concatenations (this runs on every decoded key).
    """
    cos, sin = rope.cos_sin(positions, keys.device)
    half = rope.rotary_dim // 2
    shape = [1] * keys.dim()
    shape[token_dim] = positions.numel()
    shape[-1] = half
    cos, sin = cos[:, :half].reshape(shape), sin[:, :half].reshape(shape)
    if inverse:
        cos, sin = cos / rope.scaling ** 2, -sin / rope.scaling ** 2
    x1, x2 = keys[..., :half], keys[..., half:rope.rotary_dim]
    out = torch.empty_like(keys)
    torch.mul(x1, cos, out=out[..., :half])
    out[..., :half].addcmul_(x2, sin, value=-1)
    torch.mul(x2, cos, out=out[..., half:rope.rotary_dim])
    out[..., half:rope.rotary_dim].addcmul_(x1, sin)
    if keys.shape[-1] > rope.rotary_dim:
        out[..., rope.rotary_dim:] = keys[..., rope.rotary_dim:]
    return out


def rope_of_model(model) -> Rope | None:
    """The model's RoPE (the first module holding an `inv_freq` buffer), or None without one."""
    for module in model.modules():
        inv_freq = getattr(module, "inv_freq", None)
        if isinstance(inv_freq, torch.Tensor):
            return Rope(inv_freq.detach().float().cpu().numpy().copy(), float(getattr(module, "attention_scaling", 1.0)))
    return None
