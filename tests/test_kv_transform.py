"""Transform coding (levels 6-10): calibration, round trips, RoPE, allocation, the transform id, old streams."""

import numpy as np
import pytest
import torch

from ctxzip.kv import LEVELS, KVCodec, KVFormatError
from ctxzip.kv.calibrate import STEP_GRID, allocate, calibrate_transform, hadamard_transform, pair_average
from ctxzip.kv.layout import cache_to_rows
from ctxzip.kv.rope import rope_of_model, rotate
from ctxzip.kv.transform import KVTransform, load_transform
from kv_models import tiny_cache, tiny_model

TRANSFORM_LEVELS = [level for level in LEVELS if LEVELS[level].transform]


@pytest.fixture(scope="module")
def tiny_transform():
    model = tiny_model("llama")
    windows = [torch.randint(0, 128, (120,), generator=torch.Generator().manual_seed(s)) for s in range(3)]
    return calibrate_transform(model, windows, layers_per_group=2, name="tiny", grid=STEP_GRID[::4])


def relative_error(a, b):
    return ((a.float() - b.float()).pow(2).mean() / a.float().pow(2).mean()).item()


def test_levels_round_trip_keep_sink_and_recent_exact_and_get_smaller(tiny_transform):
    model, ids, cache = tiny_cache(tokens=90, seed=5)
    rows, _ = cache_to_rows(cache)
    sizes, errors = [], []
    for level in TRANSFORM_LEVELS:
        codec = KVCodec(level=level, chunk_size=32, config=model.config, transform=tiny_transform, recent_tokens=16)
        decoded = codec.decode(codec.encode(cache))
        out, _ = cache_to_rows(decoded)
        sink, recent = LEVELS[level].sink_tokens, 16
        assert torch.equal(out[:, :sink], rows[:, :sink].half().float())  # exact in 16 bits
        assert torch.equal(out[:, -recent:], rows[:, -recent:].half().float())
        sizes.append(len(codec.encode(cache)))
        errors.append(relative_error(rows[:, sink:-recent], out[:, sink:-recent]))
        with torch.no_grad():
            logits = model(input_ids=ids[:, :3], past_key_values=decoded).logits
        assert torch.isfinite(logits).all()
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    assert errors == sorted(errors) and 0 < errors[0] < errors[-1] < 0.5


def test_rope_is_undone_exactly_enough_and_matches_the_pre_rope_keys():
    model = tiny_model("llama")
    rope = rope_of_model(model)
    captured = {}
    hook = model.model.layers[0].self_attn.k_proj.register_forward_hook(lambda m, i, o: captured.update(k=o))
    _, _, cache = tiny_cache(tokens=30, seed=2)
    hook.remove()
    keys = cache.layers[0].keys[0]  # [H, T, D]
    positions = torch.arange(30)
    plain = rotate(keys, positions, rope, inverse=True)
    pre = captured["k"][0].reshape(30, keys.shape[0], -1).transpose(0, 1)
    assert torch.allclose(plain, pre, atol=1e-5)
    assert torch.allclose(rotate(plain, positions, rope), keys, atol=1e-5)
    weights = torch.rand(2, 8)
    averaged = pair_average(weights, 8)
    assert torch.allclose(averaged[:, :4], averaged[:, 4:]) and torch.allclose(averaged.sum(1), weights.sum(1))


def test_allocation_drops_weak_components_and_favours_strong_ones():
    rng = np.random.default_rng(0)
    c = torch.from_numpy(rng.normal(size=(2000, 4)) * np.array([4.0, 1.0, 0.3, 0.01])).float()
    from ctxzip.kv.calibrate import rd_curves

    rates, dists = rd_curves(c)
    energy = c.pow(2).mean(0).double().numpy()
    step0 = int(np.argmin(np.abs(STEP_GRID - 0.5)))
    (steps,), total = allocate([rates], [dists], [energy], step0)
    assert steps[0] > 0 and steps[1] > 0 and steps[3] == 0
    coarse, coarse_total = allocate([rates], [dists], [energy], step0 + 16)
    assert coarse_total < total


def test_transform_saves_loads_and_is_named_by_its_id(tiny_transform, tmp_path):
    path = tmp_path / "tiny.npz"
    tiny_transform.save(path)
    loaded = load_transform(path)
    assert loaded.transform_id == tiny_transform.transform_id and len(loaded.transform_id) == 8
    _, _, cache = tiny_cache(tokens=40)
    data = KVCodec(level="tc-good", transform=tiny_transform).encode(cache)
    a = KVCodec(transform=loaded).decode(data)
    b = KVCodec(transform=tiny_transform).decode(data)
    assert all(torch.equal(x.keys, y.keys) and torch.equal(x.values, y.values) for x, y in zip(a.layers, b.layers))
    other = hadamard_transform(3, 2, 16)
    with pytest.raises(KVFormatError, match="needs KV transform"):
        KVCodec(transform=other).decode(data)
    with pytest.raises(KVFormatError, match="needs KV transform"):
        KVCodec().decode(data)
    with pytest.raises(KVFormatError, match="needs a KVTransform"):
        KVCodec(level="tc-good").encode(cache)
    with pytest.raises(KVFormatError, match="geometry"):
        KVCodec(level="tc-good", transform=hadamard_transform(2, 2, 16)).encode(cache)
    with pytest.raises(KVFormatError, match="no KV transform"):
        load_transform("no-such-model")


def test_hadamard_transform_needs_no_calibration():
    model, _, cache = tiny_cache(tokens=50)
    rms = torch.tensor([[layer.keys.pow(2).mean().sqrt(), layer.values.pow(2).mean().sqrt()] for layer in cache.layers])
    transform = hadamard_transform(3, 2, 16, layer_rms=rms)  # steps are fractions of each layer's RMS
    rows, _ = cache_to_rows(cache)
    codec = KVCodec(level="tc-high", transform=transform, config=model.config)
    out, _ = cache_to_rows(codec.decode(codec.encode(cache)))
    assert relative_error(rows, out) < 0.01  # step 0.15 RMS: error power ~0.15**2 / 12 of the signal


def test_a_later_chunk_has_no_sink_tokens_and_decodes_with_its_positions(tiny_transform):
    _, _, cache = tiny_cache(tokens=40)
    codec = KVCodec(level="tc-good", transform=tiny_transform, recent_tokens=0)
    first, later = codec.encode(cache), codec.encode(cache, position_offset=256)
    assert len(later) < len(first)  # the first 4 tokens are coded, not kept exact
    rows, _ = cache_to_rows(cache)
    out, _ = cache_to_rows(codec.decode(later))
    assert relative_error(rows, out) < 0.5


def test_lossless_models_exponents_and_beats_raw_16_bit():
    _, _, cache = tiny_cache(tokens=200)
    for dtype in (torch.bfloat16, torch.float16):
        layers = [(layer.keys.to(dtype), layer.values.to(dtype)) for layer in cache.layers]
        data = KVCodec(level=0).encode(layers)
        raw = sum(2 * (k.numel() + v.numel()) for k, v in layers)
        assert len(data) < raw / (1.1 if dtype == torch.float16 else 1.3)
        decoded = KVCodec().decode(data)
        assert all(torch.equal(k.view(torch.int16), d.keys.view(torch.int16)) for (k, _), d in zip(layers, decoded.layers))


def test_version_1_streams_still_decode_bit_identically():
    import os

    sample = np.load(os.path.join(os.path.dirname(__file__), "data", "kv_v1_streams.npz"))
    for level in (0, 2):
        data = sample[f"stream_{level}"].tobytes()
        assert data[4] == 1
        decoded = KVCodec().decode(data)
        keys = torch.stack([layer.keys for layer in decoded.layers]).view(torch.int16).numpy()
        values = torch.stack([layer.values for layer in decoded.layers]).view(torch.int16).numpy()
        assert np.array_equal(keys, sample[f"keys_{level}"]) and np.array_equal(values, sample[f"values_{level}"])
    with pytest.raises(KVFormatError, match="version 3 is not supported"):
        KVCodec().decode(data[:4] + bytes([3]) + data[5:])


def test_transform_file_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(KVFormatError, match="cannot read"):
        KVTransform.load(bad)
