"""Tiny random-weight decoder models of three architectures, and their caches, for the KV tests."""

from __future__ import annotations

import functools

import torch


def tiny_config(arch: str = "llama", **overrides):
    from transformers import GPTNeoXConfig, LlamaConfig, Qwen2Config

    if arch == "llama":  # grouped-query attention: 4 query heads share 2 key/value heads
        config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                             num_attention_heads=4, num_key_value_heads=2)
    elif arch == "qwen2":
        config = Qwen2Config(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=1)
    elif arch == "gpt_neox":
        config = GPTNeoXConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                               num_attention_heads=2)
    else:
        raise ValueError(arch)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@functools.lru_cache(maxsize=8)
def tiny_model(arch: str = "llama"):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config(arch)).eval()


def tiny_cache(arch: str = "llama", tokens: int = 40, seed: int = 0):
    """(model, token ids [1, tokens], DynamicCache of those tokens)."""
    model = tiny_model(arch)
    ids = torch.randint(0, model.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    return model, ids, cache


def layers_of(cache):
    return [(layer.keys, layer.values) for layer in cache.layers]
