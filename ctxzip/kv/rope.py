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


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def rotate(keys: torch.Tensor, positions: torch.Tensor, rope: Rope, inverse: bool = False) -> torch.Tensor:
    """keys [..., T, D] (float32) rotated to `positions` [T] (or back, with inverse=True)."""
    cos, sin = rope.cos_sin(positions, keys.device)
    rot, rest = keys[..., : rope.rotary_dim], keys[..., rope.rotary_dim:]
    if inverse:
        rot = (rot * cos - _rotate_half(rot) * sin) / (rope.scaling ** 2)
    else:
        rot = rot * cos + _rotate_half(rot) * sin
    return torch.cat([rot, rest], dim=-1) if rest.shape[-1] else rot


def rope_of_model(model) -> Rope | None:
    """The model's RoPE (the first module holding an `inv_freq` buffer), or None without one."""
    for module in model.modules():
        inv_freq = getattr(module, "inv_freq", None)
        if isinstance(inv_freq, torch.Tensor):
            return Rope(inv_freq.detach().float().cpu().numpy().copy(), float(getattr(module, "attention_scaling", 1.0)))
    return None
