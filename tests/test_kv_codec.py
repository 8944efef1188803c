"""KVCodec round trips, lossless exactness, geometry, budgets."""

import pytest
import torch

from ctxzip import Budget
from ctxzip.errors import BudgetTooSmallError, InvalidBudgetError
from ctxzip.kv import LEVELS, KVBudget, KVCodec, KVFormatError, fp16_bytes
from ctxzip.kv.levels import LEGACY_LEVELS
from kv_models import layers_of, tiny_cache, tiny_config


def max_relative_error(original, decoded):
    errors = []
    for (k, v), layer in zip(layers_of(original), decoded.layers):
        for a, b in ((k, layer.keys), (v, layer.values)):
            errors.append(((a.float() - b.float()).abs().max() / a.float().abs().max()).item())
    return max(errors)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_neox"])
def test_every_level_round_trips_and_the_model_continues(arch):
    model, ids, cache = tiny_cache(arch, tokens=40)
    errors = []
    for level in LEGACY_LEVELS:  # transform levels: tests/test_kv_transform.py
        codec = KVCodec(level=level, chunk_size=16, config=model.config)
        decoded = codec.decode(codec.encode(cache))
        assert decoded.get_seq_length() == 40
        assert decoded.layers[0].keys.shape == cache.layers[0].keys.shape
        assert decoded.layers[0].keys.dtype == cache.layers[0].keys.dtype
        errors.append(max_relative_error(cache, decoded))
        with torch.no_grad():
            logits = model(input_ids=ids[:, :3], past_key_values=decoded).logits
        assert torch.isfinite(logits).all() and decoded.get_seq_length() == 43
    assert errors[0] == 0.0  # lossless
    assert all(0 < e < 0.5 for e in errors[1:])
    assert errors[1] < errors[-1]  # finer levels are more precise


def test_lossy_error_is_at_most_half_a_step_and_sinks_are_kept():
    from ctxzip.kv.layout import cache_to_rows
    from ctxzip.kv.levels import depth_layer_scales
    from ctxzip.kv.quant import head_statistics

    _, _, cache = tiny_cache(tokens=64)
    rows, (n_layers, _, heads, _) = cache_to_rows(cache)
    level = LEVELS[3]
    decoded, _ = cache_to_rows(KVCodec(level=3, chunk_size=64).decode(KVCodec(level=3, chunk_size=64).encode(cache)))
    sink = level.sink_tokens
    assert torch.equal(decoded[:, :sink], rows[:, :sink].half().float())
    _, rms = head_statistics(rows[:, sink:])
    step = rms * level.step * depth_layer_scales(n_layers).reshape(-1).repeat_interleave(heads)
    error = (decoded[:, sink:] - rows[:, sink:]).abs().amax(dim=(1, 2))
    assert (error <= step * 0.5 * 1.001 + 1e-6).all()
    assert (error > step * 0.3).all()  # and the steps really are that coarse


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_lossless_is_bit_exact(dtype):
    _, _, cache = tiny_cache(tokens=33)
    layers = [(k.to(dtype), v.to(dtype)) for k, v in layers_of(cache)]
    layers[1][0][0, 0, 5, 3] = float("inf")  # special values survive too
    layers[1][1][0, 1, 7, 2] = -0.0
    codec = KVCodec(level="lossless", chunk_size=10)
    decoded = codec.decode(codec.encode(layers))
    for (k, v), layer in zip(layers, decoded.layers):
        assert torch.equal(k.view(torch.int16 if dtype != torch.float32 else torch.int32),
                           layer.keys.view(torch.int16 if dtype != torch.float32 else torch.int32))
        assert torch.equal(v, layer.values)


def test_batch_of_two_round_trips():
    _, _, cache = tiny_cache(tokens=20)
    layers = [(torch.cat([k, k.flip(2)]), torch.cat([v, v * 2])) for k, v in layers_of(cache)]
    decoded = KVCodec(level=0).decode(KVCodec(level=0).encode(layers))
    assert all(torch.equal(k, layer.keys) and torch.equal(v, layer.values) for (k, v), layer in zip(layers, decoded.layers))


def test_lossy_levels_shrink_a_larger_cache():
    _, _, cache = tiny_cache(tokens=256)
    sizes = [len(KVCodec(level=level).encode(cache)) for level in LEGACY_LEVELS]
    assert sizes[0] < fp16_bytes(cache) * 2  # fp32 lossless beats raw fp32
    assert all(a > b for a, b in zip(sizes[1:], sizes[2:]))
    assert sizes[-1] < fp16_bytes(cache) / 2


def test_stream_from_another_geometry_or_model_is_refused():
    model, _, cache = tiny_cache("llama")
    data = KVCodec(config=model.config).encode(cache)
    with pytest.raises(KVFormatError, match="geometry"):
        KVCodec(config=tiny_config("qwen2")).decode(data)
    with pytest.raises(KVFormatError, match="another model"):
        KVCodec(config=tiny_config("llama", vocab_size=999)).decode(data)
    with pytest.raises(KVFormatError, match="geometry"):
        KVCodec(config=tiny_config("qwen2")).encode(cache)
    assert KVCodec().decode(data).get_seq_length() == 40  # no config: geometry comes from the header


def test_budgets():
    _, _, cache = tiny_cache(tokens=128)
    fp16 = fp16_bytes(cache)
    codec = KVCodec()
    data = codec.encode(cache, budget=KVBudget(ratio=0.45))
    assert len(data) <= 0.45 * fp16
    assert len(codec.encode(cache, budget=KVBudget(bytes=len(data)))) <= len(data)
    assert len(codec.encode(cache, budget=Budget(ratio=0.45))) == len(data)
    with pytest.raises(BudgetTooSmallError):
        codec.encode(cache, budget=KVBudget(bytes=100))
    with pytest.raises(InvalidBudgetError, match="token budgets"):
        codec.encode(cache, budget=Budget(tokens=100))
    with pytest.raises(InvalidBudgetError):
        KVBudget(bytes=0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(KVFormatError, match="unknown KV level"):
        KVCodec(level="best")
    with pytest.raises(KVFormatError, match="not a KV cache"):
        KVCodec().encode("text")
    with pytest.raises(KVFormatError, match="bytes"):
        KVCodec().decode("text")
    k = torch.zeros(1, 2, 4, 8)
    with pytest.raises(KVFormatError, match="expected both"):
        KVCodec().encode([(k, k), (k, torch.zeros(1, 2, 5, 8))])
    with pytest.raises(KVFormatError, match="not supported"):
        KVCodec().encode([(k.double(), k.double())])


def test_sensitivity_gives_finer_steps_to_more_sensitive_layers():
    from ctxzip.kv.sensitivity import measure_sensitivity, step_scales

    model, ids, cache = tiny_cache(tokens=40)
    weights = measure_sensitivity(model, ids, continuation=8)
    assert weights.shape == (3, 2) and (weights > 0).all()
    scales = step_scales(weights)
    assert (scales >= 1 / 8).all() and (scales <= 8).all() and scales.min() < 1 < scales.max()
    assert scales.flatten()[weights.flatten().argmax()] == scales.min()
    codec = KVCodec(level=4, config=model.config, layer_scales=scales)
    assert codec.decode(codec.encode(cache)).get_seq_length() == 40
    with pytest.raises(KVFormatError, match="layer_scales"):
        KVCodec(layer_scales=torch.ones(2, 2)).encode(cache)


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_channel_weights_follow_query_energy_and_o_proj(arch):
    from ctxzip.kv.channels import measure_channel_weights

    model, ids, _ = tiny_cache(arch, tokens=40)
    weights = measure_channel_weights(model, ids)
    config = model.config
    layers, dim = config.num_hidden_layers, config.hidden_size // config.num_attention_heads
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    assert weights.shape == (layers, 2, heads, dim) and (weights >= 0).all()
    assert model.config._attn_implementation != "ctxzip_channel_probe"  # restored
    if arch == "llama":  # value weights are the o_proj column energies, summed over the GQA group
        o = model.model.layers[0].self_attn.o_proj.weight.float().pow(2).sum(0).reshape(4, dim)
        assert torch.allclose(weights[0, 1], o.reshape(2, 2, dim).sum(1))


def test_channel_gains_give_finer_steps_where_they_are_higher():
    from ctxzip.kv.channels import channel_gains, gain_codes, gains_from_codes
    from ctxzip.kv.layout import cache_to_rows

    model, _, cache = tiny_cache(tokens=64)
    weights = torch.ones(3, 2, 2, 16)
    weights[..., :8] = 64.0  # the first half of every row matters 64x more
    gains = channel_gains(weights, spread=4.0)
    assert torch.equal(gains_from_codes(gain_codes(gains)), gains)  # on the byte grid already
    assert torch.allclose(gains[..., :8] / gains[..., 8:].mean(), torch.tensor(8.0), rtol=0.05)
    codec = KVCodec(level=4, chunk_size=32, config=model.config, channel_gains=gains)
    data = codec.encode(cache)
    rows, _ = cache_to_rows(cache)
    decoded, _ = cache_to_rows(codec.decode(data))
    error = (decoded - rows)[:, 4:].pow(2).mean(dim=(0, 1))
    assert error[:8].mean() < error[8:].mean() / 10
    plain = KVCodec(level=4, chunk_size=32, config=model.config)
    assert len(data) < 1.3 * len(plain.encode(cache))  # gains cost one byte per channel per chunk
    with pytest.raises(KVFormatError, match="channel_gains"):
        KVCodec(channel_gains=torch.ones(3, 2, 2, 8)).encode(cache)
    with pytest.raises(KVFormatError, match="channel_gains"):
        KVCodec(channel_gains=torch.zeros(3, 2, 2, 16)).encode(cache)


def test_calibrated_codec_measures_gains_on_the_text_it_encodes():
    model, ids, cache = tiny_cache(tokens=48)
    codec = KVCodec.calibrated(model, ids, level=4, chunk_size=16)
    assert codec.channel_gains.shape == (3, 2, 2, 16) and (codec.channel_gains > 0).all()
    decoded = codec.decode(codec.encode(cache))
    assert decoded.get_seq_length() == 48 and max_relative_error(cache, decoded) < 0.5
