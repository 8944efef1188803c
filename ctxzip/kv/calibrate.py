"""Calibrate a `KVTransform` for a model once: weights, PCA per layer group, steps per level.

1. Caches of calibration windows (sink tokens left out: they are coded losslessly), keys with RoPE undone.
2. Weights: per channel from `channels.measure_channel_weights` (query energy for keys, averaged over
   each RoPE pair since the pair's energy survives the rotation; o_proj column energy for values),
   per (layer, key/value) from `sensitivity.measure_sensitivity` (KL per relative step^2), each
   layer normalised by its RMS, so squared error on weighted data approximates added KL.
3. PCA (KLT) of the weighted data per (group of `layers_per_group` layers, key/value).
4. Steps by rate-distortion optimisation on measured numbers: for every component and every step on a
   grid, the empirical entropy R (bits/token) and squared error D of its quantized coefficients on the
   calibration data; each component takes the step (or no coding) minimising D + lambda R, with
   lambda = ln2 * step0^2 / 6 (the slope of an entropy-coded uniform quantizer at step0), and step0 per
   level is found by bisection so the level's rate on calibration data meets its target.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ctxzip.kv.channels import channel_gains, measure_channel_weights
from ctxzip.kv.layout import cache_layers
from ctxzip.kv.rope import rope_of_model, rotate
from ctxzip.kv.sensitivity import measure_sensitivity, step_scales
from ctxzip.kv.transform import GroupTransform, KVTransform, hadamard_matrix

LEVEL_TARGET_BITS = (3.0, 2.4, 2.0, 1.7, 1.4)  # bits per coded value of middle tokens, on calibration data
STEP_GRID = 2.0 ** (np.arange(-72, 33) / 8)  # candidate steps in weighted units
SINK = 4


@torch.no_grad()
def collect(model, windows: list[torch.Tensor], rope) -> torch.Tensor:
    """[L, 2, H, N, D] float32: keys (RoPE undone) and values of all windows past their sink tokens."""
    parts = []
    for ids in windows:
        cache = model(input_ids=ids.reshape(1, -1).to(model.device), use_cache=True).past_key_values
        layers = cache_layers(cache)
        keys = torch.stack([k[0] for k, _ in layers]).float().cpu()  # [L, H, T, D]
        values = torch.stack([v[0] for _, v in layers]).float().cpu()
        if rope is not None:
            keys = rotate(keys, torch.arange(keys.shape[2]), rope, inverse=True)
        parts.append(torch.stack([keys, values], 1)[:, :, :, SINK:])
    return torch.cat(parts, dim=3)


def pair_average(weights: torch.Tensor, rotary_dim: int) -> torch.Tensor:
    """Average each RoPE pair (i, i + rotary_dim/2) of the last dim: what a pre-RoPE channel sees."""
    out = weights.clone()
    half = rotary_dim // 2
    mean = 0.5 * (weights[..., :half] + weights[..., half:rotary_dim])
    out[..., :half], out[..., half:rotary_dim] = mean, mean
    return out


def _entropy_rows(q: torch.Tensor) -> torch.Tensor:
    """Empirical entropy (bits per sample) of every column of integer q [N, F] (symbols beyond 2047 merged)."""
    n, f = q.shape
    q = q.clamp(-2048, 2047)
    q = q - q.amin(0)
    width = int(q.max()) + 1
    counts = torch.bincount((q + torch.arange(f) * width).reshape(-1), minlength=f * width).reshape(f, width)
    p = counts[counts > 0].double() / n
    terms = torch.zeros(f, width, dtype=torch.float64)
    terms[counts > 0] = -p * torch.log2(p)
    return terms.sum(1)


def rd_curves(c: torch.Tensor, grid: np.ndarray = STEP_GRID) -> tuple[np.ndarray, np.ndarray]:
    """R and D [F, len(grid)] of coefficients c [N, F] quantized at every grid step."""
    rates, dists = [], []
    for step in grid:
        q = torch.floor(c / step + 0.5)
        rates.append(_entropy_rows(q.to(torch.int64)))
        dists.append((c - q * step).pow(2).mean(0).double())
    return torch.stack(rates, 1).numpy(), torch.stack(dists, 1).numpy()


def allocate(rates: list[np.ndarray], dists: list[np.ndarray], energy: list[np.ndarray], step0_index: int,
             grid: np.ndarray = STEP_GRID, spread: int = 8) -> tuple[list[np.ndarray], float]:
    """Steps per component (0 = not coded) minimising D + lambda R around grid step `step0_index`; total rate."""
    lam = math.log(2) * grid[step0_index] ** 2 / 6
    lo, hi = max(0, step0_index - spread), min(len(grid), step0_index + spread + 1)
    steps, total = [], 0.0
    for r, d, e in zip(rates, dists, energy):
        cost = d[:, lo:hi] + lam * r[:, lo:hi]
        best = cost.argmin(1)
        coded = cost[np.arange(len(best)), best] < e  # not coding costs the component's energy
        steps.append(np.where(coded, grid[lo + best], 0.0).astype(np.float32))
        total += float(np.where(coded, r[np.arange(len(best)), lo + best], 0.0).sum())
    return steps, total


def calibrate_transform(model, windows: list[torch.Tensor], sensitivity_ids: torch.Tensor | None = None,
                        layers_per_group: int = 3, name: str = "model", targets=LEVEL_TARGET_BITS,
                        use_rope: bool = True, gain_spread: float = 8.0, notes: dict | None = None,
                        grid: np.ndarray = STEP_GRID) -> KVTransform:
    """A KVTransform for `model` from calibration token windows (1-D id tensors, >= 64 tokens each)."""
    rope = rope_of_model(model) if use_rope else None
    data = collect(model, windows, rope)  # [L, 2, H, N, D]
    n_layers, _, heads, n, dim = data.shape
    weights = measure_channel_weights(model, windows[0])
    if rope is not None:
        weights[:, 0] = pair_average(weights[:, 0], rope.rotary_dim)
    channel = channel_gains(weights, spread=gain_spread)  # [L, 2, H, D]
    probe = sensitivity_ids if sensitivity_ids is not None else windows[0]
    layer = 1.0 / step_scales(measure_sensitivity(model, probe, continuation=min(64, probe.numel() // 4)))
    mean = data.mean(dim=3, keepdim=True)
    centred = (data - mean) * channel[:, :, :, None, :]
    rms = centred.pow(2).mean(dim=(2, 3, 4)).sqrt().clamp_min(1e-12)  # [L, 2]
    gain = channel * (layer / rms)[:, :, None, None]
    groups, curves = [], []
    for start in range(0, n_layers, layers_per_group):
        stop = min(n_layers, start + layers_per_group)
        kinds = []
        for kind in range(2):
            x = data[start:stop, kind].permute(2, 0, 1, 3).reshape(n, -1)  # [N, G*H*D]
            mu = mean[start:stop, kind].permute(2, 0, 1, 3).reshape(-1)
            g = gain[start:stop, kind].reshape(-1)
            y = ((x - mu) * g).double()
            eigenvalues, vectors = torch.linalg.eigh(y.T @ y / n)
            basis = vectors.flip(1).float()
            c = y.float() @ basis
            rates, dists = rd_curves(c, grid)
            curves.append((rates, dists, c.pow(2).mean(0).double().numpy()))
            kinds.append([mu.float().numpy(), g.float().numpy(), basis.numpy()])
        groups.append(kinds)
    values_per_token = n_layers * 2 * heads * dim
    level_steps = []
    for target in targets:
        low, high = 0, len(grid) - 1
        while low < high:  # the smallest grid step whose rate is within the target
            middle = (low + high) // 2
            _, total = allocate(*zip(*curves), middle, grid)
            if total / values_per_token <= target:
                high = middle
            else:
                low = middle + 1
        level_steps.append(allocate(*zip(*curves), low, grid)[0])
    flat = [part for kinds in groups for part in kinds]
    out_groups = []
    for i, (mu, g, basis) in enumerate(flat):
        steps = np.stack([level[i] for level in level_steps])  # [levels, F]
        kept = np.flatnonzero(steps.max(0) > 0)
        part = GroupTransform(mu.astype(np.float32), g.astype(np.float32),
                              np.ascontiguousarray(basis[:, kept]).astype(np.float16).astype(np.float32),  # as stored
                              np.ascontiguousarray(steps[:, kept]).astype(np.float32))
        if i % 2 == 0:
            out_groups.append([part])
        else:
            out_groups[-1].append(part)
    info = {"calibration_tokens": int(n), "targets_bits": list(targets), "kind": "pca"} | (notes or {})
    return KVTransform(name, n_layers, heads, dim, layers_per_group, out_groups, rope, info)


def hadamard_transform(n_layers: int, n_heads: int, head_dim: int, layer_rms: torch.Tensor | None = None,
                       steps=(0.15, 0.3, 0.45, 0.6, 0.9), name: str = "hadamard") -> KVTransform:
    """No calibration data: a Hadamard rotation of each head, one step per level (fraction of the
    layer's RMS, given as `layer_rms` [layers, 2] or 1), keys coded as they are (RoPE applied)."""
    rotation = hadamard_matrix(head_dim)
    basis = np.kron(np.eye(n_heads, dtype=np.float32), rotation)
    rms = torch.ones(n_layers, 2) if layer_rms is None else torch.as_tensor(layer_rms).float()
    groups = []
    for layer in range(n_layers):
        kinds = []
        for kind in range(2):
            gain = np.full(n_heads * head_dim, 1.0 / float(rms[layer, kind]), np.float32)
            level_steps = np.repeat(np.array(steps, np.float32)[:, None], n_heads * head_dim, 1)
            kinds.append(GroupTransform(np.zeros(n_heads * head_dim, np.float32), gain, basis.copy(), level_steps))
        groups.append(kinds)
    return KVTransform(name, n_layers, n_heads, head_dim, 1, groups, None, {"kind": "hadamard"})
