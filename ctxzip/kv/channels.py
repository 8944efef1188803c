"""Per-channel step allocation inside each (layer, key/value, head) row.

A key error dk changes an attention logit by q . dk, so channel c of a key matters in proportion to
E[q_c^2] over the queries that read it (after RoPE, summed over the query heads of a GQA group);
many RoPE channels see almost no query energy and can be coded coarsely. A value error dv reaches
the layer output through o_proj, so value channel c matters in proportion to ||W_o[:, c]||^2.
Minimising that weighted error at a fixed rate gives steps proportional to 1/sqrt(w_c) (reverse
water-filling), so the codec multiplies each channel by a gain g_c ~ sqrt(w_c) before its uniform
row quantizer and divides it out after decoding.

Gains travel in every lossy chunk as one byte per (row, channel): g = 2 ** ((code - 128) / 16).
"""

from __future__ import annotations

import torch

GAIN_STEPS_PER_OCTAVE = 16


@torch.no_grad()
def measure_channel_weights(model, input_ids: torch.Tensor) -> torch.Tensor:
    """[layers, 2, kv_heads, head_dim] weights of key and value channels, from one pass over sample text.

    The attention function is wrapped (transformers' AttentionInterface) so post-RoPE queries are
    seen for any decoder model with standard attention, whatever its RoPE layout.
    """
    from transformers import AttentionInterface
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    original_name = config._attn_implementation
    # eager is not in the registry; sdpa computes the same thing
    inner = ALL_ATTENTION_FUNCTIONS.get(original_name) or ALL_ATTENTION_FUNCTIONS["sdpa"]
    seen: dict[int, torch.Tensor] = {}
    values: dict[int, torch.Tensor] = {}

    def probe(module, query, key, value, attention_mask, **kwargs):
        heads, kv_heads, dim = query.shape[1], key.shape[1], query.shape[-1]
        energy = query.float().pow(2).mean(dim=(0, 2))  # [heads, dim]
        seen[module.layer_idx] = energy.reshape(kv_heads, heads // kv_heads, dim).sum(1)
        o_proj = getattr(module, "o_proj", None)
        if o_proj is not None:
            columns = o_proj.weight.float().pow(2).sum(0).reshape(heads, dim)
            values[module.layer_idx] = columns.reshape(kv_heads, heads // kv_heads, dim).sum(1)
        return inner(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("ctxzip_channel_probe", probe)
    config._attn_implementation = "ctxzip_channel_probe"
    try:
        model(input_ids.reshape(1, -1).to(model.device), use_cache=False)
    finally:
        config._attn_implementation = original_name
    layers = sorted(seen)
    keys = torch.stack([seen[i] for i in layers])
    vals = torch.stack([values.get(i, torch.ones_like(seen[i])) for i in layers])
    return torch.stack([keys, vals], dim=1).cpu()


def channel_gains(weights: torch.Tensor, spread: float = 8.0) -> torch.Tensor:
    """Gains ~ sqrt(w) with geometric mean 1 per row, clamped to [1/spread, spread], on the byte grid.

    The clamp keeps a channel nobody reads from being zeroed (the quadratic model is only local).
    """
    w = weights.double().clamp_min(1e-12)
    gains = w.sqrt()
    gains = gains / gains.log().mean(dim=-1, keepdim=True).exp()
    return gains_from_codes(gain_codes(gains.clamp(1 / spread, spread)))


def gain_codes(gains: torch.Tensor) -> torch.Tensor:
    """uint8 codes of gains: 128 + 16 log2(g), rounded and clipped to the byte."""
    codes = torch.round(128 + GAIN_STEPS_PER_OCTAVE * torch.log2(gains.double()))
    return codes.clamp(0, 255).to(torch.uint8)


def gains_from_codes(codes: torch.Tensor) -> torch.Tensor:
    return torch.pow(2.0, (codes.double() - 128) / GAIN_STEPS_PER_OCTAVE).float()


def rows_of(gains: torch.Tensor, batch: int) -> torch.Tensor:
    """[layers, 2, heads, dim] gains -> [rows, dim] in the row order of `layout.cache_to_rows`."""
    layers, kinds, heads, dim = gains.shape
    return gains[:, :, None].expand(layers, kinds, batch, heads, dim).reshape(-1, dim)
