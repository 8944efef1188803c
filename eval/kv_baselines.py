"""Baselines for the KV benchmark: each returns (reconstructed layers, bits for the whole cache).

Sizes of int8/int4/CacheGen are the ideal entropy of their symbols plus their fp16 scales (no tables,
no framing); zstd and the KVTC-style baseline count their real compressed output.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def entropy_bits(symbols: np.ndarray) -> float:
    """Ideal entropy-coded size in bits of `symbols` under their own empirical distribution."""
    counts = np.unique(symbols, return_counts=True)[1].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def per_token_int(layers, bits: int):
    """Asymmetric min-max quantization per token and head over head_dim; fp16 scale + zero per token."""
    levels = 2 ** bits - 1
    out, total = [], 0.0
    for pair in layers:
        rebuilt = []
        for x in pair:
            lo, hi = x.amin(-1, keepdim=True).half().float(), x.amax(-1, keepdim=True).half().float()
            scale = ((hi - lo) / levels).clamp_min(1e-8)
            q = torch.round((x - lo) / scale).clamp(0, levels)
            rebuilt.append(q * scale + lo)
            total += sum(entropy_bits(q[:, h].numpy()) for h in range(q.shape[1])) + 32 * lo.numel()
        out.append(tuple(rebuilt))
    return out, total


def cachegen_lmcache(layers):
    """LMCache's CacheGen: per-token absmax scale, 32 bins in the first half of layers, 16 later, no deltas;
    symbols entropy-coded with one distribution per (layer, key/value, channel)."""
    out, total = [], 0.0
    for layer, pair in enumerate(layers):
        bins = 32 if layer < len(layers) // 2 else 16
        rebuilt = []
        for x in pair:
            scale = x.abs().amax(-1, keepdim=True).half().float().clamp_min(1e-8)
            half = bins // 2 - 1
            q = torch.round(x / scale * half).clamp(-half - 1, half)
            rebuilt.append(q * scale / half)
            flat = q.permute(0, 1, 3, 2).reshape(-1, q.shape[2]).numpy()  # (batch, head, channel) x tokens
            total += sum(entropy_bits(row) for row in flat) + 16 * scale.numel()
        out.append(tuple(rebuilt))
    return out, total


def zstd_bits(layers, dtype=torch.float16) -> float:
    import zstandard

    raw = b"".join(k.to(dtype).view(torch.int16).numpy().tobytes() + v.to(dtype).view(torch.int16).numpy().tobytes()
                   for k, v in layers)
    return 8.0 * len(zstandard.ZstdCompressor(level=3).compress(raw))


# ---- KVTC-style: PCA over all layers and heads, DP bit allocation, uniform quantization, DEFLATE -------

def dp_bit_allocation(variances: np.ndarray, budget_bits: int, max_bits: int = 8) -> np.ndarray:
    """Integer bits per component minimising sum(var * 4**-bits) with sum(bits) <= budget (KVTC's DP)."""
    n = variances.size
    best = np.zeros(budget_bits + 1)
    choice = np.zeros((n, budget_bits + 1), dtype=np.int8)
    for i in range(n - 1, -1, -1):  # best[b]: least error of components i.. within b bits
        options = np.full((max_bits + 1, budget_bits + 1), np.inf)
        for bits in range(max_bits + 1):
            cost = variances[i] * 4.0 ** -bits
            options[bits, bits:] = cost + best[: budget_bits + 1 - bits]
        choice[i] = options.argmin(0)
        best = options.min(0)
    bits, left = np.zeros(n, dtype=np.int64), budget_bits
    for i in range(n):
        bits[i] = choice[i, left]
        left -= bits[i]
    return bits


class KVTCBaseline:
    """KVTC as its paper describes it, on SmolLM2: keys with RoPE undone, keys (and values) of all layers
    and heads concatenated per token, PCA calibrated once, DP bit allocation for `bits_per_value`,
    per-component min-max uniform quantization (fp16 min and max per cache), DEFLATE of the symbol
    bytes, the first `sink` and last `recent` tokens kept in fp16."""

    def __init__(self, calibration_layers: list, rope, bits_per_value: float, sink: int = 4, recent: int = 128,
                 rank: int = 2048, pca=None) -> None:
        from ctxzip.kv.rope import rotate

        self.rope, self.sink, self.recent, self._rotate = rope, sink, recent, rotate
        # (means, bases, variances) per kind; computed once and shared between budgets via `pca`
        self.pca = pca if pca is not None else self._pca(calibration_layers, rank)
        self.means, self.bases, variances = self.pca
        width = self.means[0].numel()
        self.bits = [dp_bit_allocation(v, int(bits_per_value * width)) for v in variances]

    def _pca(self, calibration_layers: list, rank: int):
        means, bases, variances = [], [], []
        for kind in range(2):
            x = torch.cat([self._features(layers, kind)[self.sink:] for layers in calibration_layers])
            mean = x.mean(0)
            _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
            means.append(mean.float())
            bases.append(vt[:rank].T.float().contiguous())
            variances.append((s[:rank].double() ** 2 / x.shape[0]).numpy())
        return means, bases, variances

    def _features(self, layers, kind: int) -> torch.Tensor:
        """[T, L*H*D] per token (batch 1), keys with RoPE undone."""
        parts = []
        for k, v in layers:
            x = (k if kind == 0 else v)[0].float()  # [H, T, D]
            if kind == 0 and self.rope is not None:
                x = self._rotate(x, torch.arange(x.shape[1]), self.rope, inverse=True)
            parts.append(x.permute(1, 0, 2).reshape(x.shape[1], -1))
        return torch.cat(parts, 1)

    def __call__(self, layers):
        tokens = layers[0][0].shape[2]
        middle = slice(self.sink, tokens - self.recent)
        rebuilt, total = [], 0.0
        for kind in range(2):
            x = self._features(layers, kind)
            c = (x[middle] - self.means[kind]) @ self.bases[kind]
            bits = torch.from_numpy(self.bits[kind])
            coded = bits > 0
            lo, hi = c.amin(0).half().float(), c.amax(0).half().float()
            levels = (2.0 ** bits - 1).clamp_min(1)
            scale = ((hi - lo) / levels).clamp_min(1e-12)
            q = torch.round((c - lo) / scale).clamp(torch.zeros_like(levels), levels)
            c_hat = torch.where(coded, q * scale + lo, torch.zeros_like(c))
            symbols = q[:, coded].to(torch.uint8).T.contiguous().numpy().tobytes()  # component-major
            total += 8.0 * len(zlib.compress(symbols, 6)) + 32 * int(coded.sum())
            out = x.clone()
            out[middle] = c_hat @ self.bases[kind].T + self.means[kind]
            total += 16.0 * (x.numel() - out[middle].numel())  # sink and recent tokens in fp16
            rebuilt.append(out)
        result = []
        heads, dim = layers[0][0].shape[1], layers[0][0].shape[3]
        for layer in range(len(layers)):
            pair = []
            for kind in range(2):
                x = rebuilt[kind][:, layer * heads * dim:(layer + 1) * heads * dim].reshape(tokens, heads, dim)
                x = x.permute(1, 0, 2)
                if kind == 0 and self.rope is not None:
                    x = self._rotate(x, torch.arange(tokens), self.rope)
                if kind == 0:
                    x[:, : self.sink] = layers[layer][0][0, :, : self.sink].half().float()
                    x[:, tokens - self.recent:] = layers[layer][0][0, :, tokens - self.recent:].half().float()
                else:
                    x[:, : self.sink] = layers[layer][1][0, :, : self.sink].half().float()
                    x[:, tokens - self.recent:] = layers[layer][1][0, :, tokens - self.recent:].half().float()
                pair.append(x[None])
            result.append(tuple(pair))
        return result, total
