"""Fuzzing the KV stream decoder with mutated streams: any damage is refused with KVFormatError,
never a crash, a hang or a silently different cache (whole-stream and incremental decoding)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ctxzip.kv import KVCodec, KVFormatError, StreamDecoder
from kv_models import layers_of, tiny_cache
from tests.support.fuzz import examples

FUZZ = settings(max_examples=examples(60), deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=[0, 2, 4])
def sample(request):
    _, _, cache = tiny_cache(tokens=12)
    small = [(k[:, :, :12], v[:, :, :12]) for k, v in layers_of(cache)[:2]]
    codec = KVCodec(level=request.param, chunk_size=5)
    return codec, codec.encode(small)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("append"), st.just(0), st.binary(min_size=1, max_size=64)),
)


def mutate(data: bytes, mutations) -> bytes:
    damaged = bytearray(data)
    for kind, position, value in mutations:
        position %= max(len(damaged), 1)
        if kind == "flip" and damaged:
            damaged[position] ^= value
        elif kind == "cut":
            del damaged[position : position + value]
        elif kind == "insert":
            damaged[position:position] = value
        elif kind == "truncate":
            del damaged[position:]
        elif kind == "append":
            damaged += value
    return bytes(damaged)


@FUZZ
@given(mutations=st.lists(mutation, min_size=1, max_size=3), step=st.integers(1, 97))
def test_mutated_streams_are_refused_or_identical(sample, mutations, step):
    codec, data = sample
    damaged = mutate(data, mutations)
    expected = codec.decode(data)
    try:
        decoded = codec.decode(damaged)
    except KVFormatError:
        event("refused")
    else:  # only a no-op mutation may decode, and then to the same cache
        event("decoded")
        assert damaged == data
        for a, b in zip(decoded.layers, expected.layers):
            assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    # Fed in pieces, the incremental decoder refuses the same damage.
    decoder = StreamDecoder()
    try:
        for begin in range(0, len(damaged), step):
            decoder.feed(damaged[begin : begin + step])
        decoder.finish()
    except KVFormatError:
        assert damaged != data
        return
    assert damaged == data
