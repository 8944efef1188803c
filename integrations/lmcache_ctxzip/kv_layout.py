"""LMCache's KV chunk layout <-> ctxzip's, and a whole chunk <-> one ctxzip stream (no LMCache import).

LMCache hands a serializer one chunk of a prompt's KV in `MemoryFormat.KV_2LTD`: a tensor
[2 (key, value), layers, tokens, kv_heads * head_dim]. ctxzip codes (keys, values) per layer, each
[batch, kv_heads, tokens, head_dim]; a chunk is a batch of one.
"""

from __future__ import annotations

import torch

from ctxzip.errors import InvalidInputError


def lmcache_to_layers(kv: torch.Tensor, kv_heads: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[2, L, T, H*D] -> [(keys [1, H, T, D], values [1, H, T, D])] per layer (views where possible)."""
    if kv.dim() != 4 or kv.shape[0] != 2 or kv.shape[3] % kv_heads:
        raise InvalidInputError(f"expected an LMCache KV_2LTD chunk [2, layers, tokens, {kv_heads} x head_dim], "
                                f"got {tuple(kv.shape)}")
    _, layers, tokens, hidden = kv.shape
    split = kv.reshape(2, layers, tokens, kv_heads, hidden // kv_heads).permute(0, 1, 3, 2, 4)  # [2, L, H, T, D]
    return [(split[0, layer][None], split[1, layer][None]) for layer in range(layers)]


def cache_to_lmcache(cache, out: torch.Tensor) -> None:
    """Write a decoded DynamicCache (batch 1) into out [2, L, T, H*D], in out's dtype."""
    for layer, item in enumerate(cache.layers):
        for kind, x in enumerate((item.keys, item.values)):
            heads, tokens, dim = x.shape[1:]
            out[kind, layer].copy_(x[0].permute(1, 0, 2).reshape(tokens, heads * dim))


def encode_chunk(codec, kv: torch.Tensor, kv_heads: int, position_offset: int = 0) -> bytes:
    """One ctxzip stream for an LMCache chunk; `position_offset` is the chunk's first token position."""
    return codec.encode(lmcache_to_layers(kv, kv_heads), position_offset=position_offset)


def decode_chunk(codec, data: bytes, out: torch.Tensor) -> None:
    """Decode a stream written by `encode_chunk` into out [2, L, T, H*D]."""
    cache = codec.decode(data, device=str(out.device))
    layers, tokens = out.shape[1], out.shape[2]
    if len(cache.layers) != layers or cache.get_seq_length() != tokens:
        raise InvalidInputError(f"stream holds {len(cache.layers)} layers x {cache.get_seq_length()} tokens, "
                                f"the destination chunk is {layers} x {tokens}")
    cache_to_lmcache(cache, out)
