"""transformers caches <-> one tensor `[rows, tokens, head_dim]`, rows = (layer, key/value, batch x head)."""

from __future__ import annotations

import torch

from ctxzip.kv.format import KVFormatError

SUPPORTED_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
DTYPES = {name: dtype for dtype, name in SUPPORTED_DTYPES.items()}


def cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer, each [batch, heads, tokens, head_dim], from a DynamicCache or tuples."""
    if hasattr(cache, "layers"):
        pairs = []
        for i, layer in enumerate(cache.layers):
            keys, values = getattr(layer, "keys", None), getattr(layer, "values", None)
            if not isinstance(keys, torch.Tensor) or not isinstance(values, torch.Tensor):
                raise KVFormatError(f"cache layer {i} ({type(layer).__name__}) holds no key/value tensors")
            if getattr(layer, "is_sliding", False):
                raise KVFormatError(f"cache layer {i} is a sliding-window layer; only full attention caches are supported")
            pairs.append((keys, values))
    elif isinstance(cache, (tuple, list)):
        pairs = [tuple(layer) for layer in cache]
    else:
        raise KVFormatError(f"not a KV cache: {type(cache).__name__}")
    if not pairs:
        raise KVFormatError("the cache is empty (no layers)")
    shape, dtype = pairs[0][0].shape, pairs[0][0].dtype
    for i, (keys, values) in enumerate(pairs):
        if keys.dim() != 4 or keys.shape != shape or values.shape != shape:
            raise KVFormatError(f"cache layer {i} has keys {tuple(keys.shape)} / values {tuple(values.shape)}, "
                                f"expected both {tuple(shape)} (standard attention, same shape in every layer)")
        if keys.dtype != dtype or values.dtype != dtype:
            raise KVFormatError(f"cache layer {i} mixes dtypes")
    if dtype not in SUPPORTED_DTYPES:
        raise KVFormatError(f"cache dtype {dtype} is not supported ({sorted(SUPPORTED_DTYPES.values())})")
    return pairs


def cache_to_rows(cache) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The cache as [rows, tokens, head_dim] and its (layers, batch, heads, head_dim)."""
    pairs = cache_layers(cache)
    batch, heads, tokens, dim = pairs[0][0].shape
    rows = torch.stack([torch.stack(pair) for pair in pairs])  # [L, 2, B, H, T, D]
    return rows.reshape(-1, tokens, dim), (len(pairs), batch, heads, dim)
