"""Stream format: framing, corruption/truncation/reordering detection, incremental decoding, controller."""

import struct

import pytest
import torch

from ctxzip.kv import KVCodec, KVFormatError, StreamDecoder, encode_stream
from ctxzip.kv.controller import BandwidthController
from ctxzip.kv.format import MAGIC
from kv_models import layers_of, tiny_cache


@pytest.fixture(scope="module")
def sample():
    _, _, cache = tiny_cache(tokens=12)
    small = [(k[:, :, :12], v[:, :, :12]) for k, v in layers_of(cache)[:2]]
    codec = KVCodec(level=2, chunk_size=5)
    return codec, codec.encode(small)


def test_stream_starts_with_magic_and_splits_into_frames(sample):
    _, data = sample
    assert data.startswith(MAGIC)
    frames = list(encode_stream(tiny_cache(tokens=12)[2], level=2, chunk_size=5))
    assert len(frames) == 1 + 3 + 1  # header, 3 chunks, end


def test_every_single_byte_change_is_detected(sample):
    codec, data = sample
    for position in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= flip
            with pytest.raises(KVFormatError):
                codec.decode(bytes(damaged))


def test_every_truncation_is_detected(sample):
    codec, data = sample
    for cut in range(len(data)):
        with pytest.raises(KVFormatError):
            codec.decode(data[:cut])
    with pytest.raises(KVFormatError, match="after the END"):
        codec.decode(data + data[5:30])


def test_reordered_or_dropped_frames_are_detected():
    _, _, cache = tiny_cache(tokens=30)
    frames = list(encode_stream(cache, level=3, chunk_size=10))
    for order in ([0, 2, 1, 3, 4], [0, 1, 3, 4], [0, 1, 2, 2, 3, 4], [1, 0, 2, 3, 4]):
        with pytest.raises(KVFormatError):
            KVCodec().decode(b"".join(frames[i] for i in order))


def test_bad_magic_and_version():
    _, data = tiny_cache(tokens=4)[2], KVCodec().encode(tiny_cache(tokens=4)[2])
    with pytest.raises(KVFormatError, match="magic"):
        KVCodec().decode(b"XXXX" + data[4:])
    with pytest.raises(KVFormatError, match="version"):
        KVCodec().decode(data[:4] + bytes([99]) + data[5:])


def test_decoder_grows_the_cache_as_bytes_arrive():
    _, _, cache = tiny_cache(tokens=50)
    data = KVCodec(level=1, chunk_size=16).encode(cache)
    decoder = StreamDecoder()
    gained = [decoder.feed(data[i:i + 97]) for i in range(0, len(data), 97)]
    assert sum(gained) == 50 and sorted(set(gained)) [-1] <= 32
    whole = KVCodec().decode(data)
    assert all(torch.equal(a.keys, b.keys) for a, b in zip(decoder.finish().layers, whole.layers))
    # cut before the END frame: everything decoded so far is there, but finish refuses
    partial = StreamDecoder()
    partial.feed(data[:-10])
    assert partial.tokens == 50
    with pytest.raises(KVFormatError, match="truncated"):
        partial.finish()


def test_controller_picks_levels_by_bandwidth():
    _, _, cache = tiny_cache(tokens=64)
    size = len(KVCodec(level=1, chunk_size=16).encode(cache))
    fast = BandwidthController(bandwidth=size * 10, time_budget=1.0, n_chunks=4)
    b"".join(encode_stream(cache, chunk_size=16, controller=fast))
    assert fast.chosen == [1, 1, 1, 1]
    slow = BandwidthController(bandwidth=size / 3, time_budget=1.0, n_chunks=4)
    data = b"".join(encode_stream(cache, chunk_size=16, controller=slow))
    assert slow.chosen[0] > 1 and KVCodec().decode(data).get_seq_length() == 64
    slow.observe(1000, 2.0)
    assert slow.bandwidth < size / 3


def test_text_fallback_is_recomputed_by_the_receiver():
    model, ids, cache = tiny_cache(tokens=48)
    controller = BandwidthController(bandwidth=100.0, time_budget=0.01, n_chunks=3, recompute_seconds_per_token=1e-6)
    data = b"".join(encode_stream(cache, chunk_size=16, controller=controller, token_ids=ids[0], config=model.config))
    assert controller.chosen == [None, None, None]
    with pytest.raises(KVFormatError, match="recompute"):
        KVCodec().decode(data)
    decoder = StreamDecoder(model=model)
    decoder.feed(data)
    rebuilt = decoder.finish()
    for a, b in zip(cache.layers, rebuilt.layers):
        assert torch.allclose(a.keys, b.keys, atol=1e-5) and torch.allclose(a.values, b.values, atol=1e-5)


def test_end_frame_totals_are_checked():
    _, _, cache = tiny_cache(tokens=20)
    frames = list(encode_stream(cache, chunk_size=10))
    # a well-formed END frame whose totals disagree with what was received
    import zlib
    bad_payload = struct.pack("<II", 2, 19)
    head = struct.pack("<BII", ord("E"), 3, len(bad_payload))
    bad_end = head + bad_payload + struct.pack("<I", zlib.crc32(bad_payload, zlib.crc32(head)))
    with pytest.raises(KVFormatError, match="incomplete"):
        KVCodec().decode(b"".join(frames[:3]) + bad_end)


@pytest.fixture(scope="module")
def transform_sample():
    """A version 2 stream with exact (sink, recent) and transform-coded chunks: 4 + 4 + 2 tokens."""
    from ctxzip.kv.calibrate import hadamard_transform

    _, _, cache = tiny_cache(tokens=10)
    small = [(k[:, :1], v[:, :1]) for k, v in layers_of(cache)[:1]]
    codec = KVCodec(level="tc-medium", chunk_size=4, transform=hadamard_transform(1, 1, 16), recent_tokens=2)
    return codec, codec.encode(small)


def test_every_single_byte_change_of_a_transform_stream_is_detected(transform_sample):
    codec, data = transform_sample
    assert data[4] == 2 and len(data) < 1200
    codec.decode(data)
    for position in range(len(data)):
        for value in range(0, 256, 5):  # the eval harness (eval/kv.py) tries all 255 other values
            if value == data[position]:
                continue
            damaged = bytearray(data)
            damaged[position] = value
            with pytest.raises(KVFormatError):
                codec.decode(bytes(damaged))


def test_every_truncation_of_a_transform_stream_is_detected(transform_sample):
    codec, data = transform_sample
    for cut in range(len(data)):
        with pytest.raises(KVFormatError):
            codec.decode(data[:cut])
