"""Interleaved rANS (numba) and its Laplace table family."""

import numpy as np
import pytest

from ctxzip.kv import KVFormatError, laplace, rans


def _block(seed=0, n_segments=7, length=53, lanes=8):
    rng = np.random.default_rng(seed)
    index = rng.integers(5, 55, n_segments)
    values = np.concatenate([np.round(rng.laplace(0, laplace.scale_of_index(i), length)) for i in index]).astype(np.int64)
    values[3], values[100] = 10**6, -4000  # far outside every table: escaped
    return values, index, length, rans.encode(values, index, length, laplace.tables(), lanes=lanes)


@pytest.mark.parametrize("lanes", [1, 4, 32])
def test_round_trip_with_escapes(lanes):
    values, index, length, data = _block(lanes=lanes)
    out, end = rans.decode(memoryview(data), 0, values.size, index, length, laplace.tables())
    assert end == len(data) and np.array_equal(out, values)


def test_cost_is_close_to_the_entropy():
    rng = np.random.default_rng(1)
    values = np.round(rng.laplace(0, 3.0, 200_000)).astype(np.int64)
    index = laplace.index_of_scale(np.array([np.abs(values).mean()]))
    data = rans.encode(values, index.astype(np.int64), values.size, laplace.tables())
    counts = np.unique(values, return_counts=True)[1]
    entropy = -(counts * np.log2(counts / counts.sum())).sum()
    assert 8 * len(data) < 1.03 * entropy


def test_damage_is_caught_by_the_end_state():
    values, index, length, data = _block()
    caught = 0
    for position in range(2 + 4 * 8, len(data), 7):  # inside the words
        damaged = bytearray(data)
        damaged[position] ^= 0x21
        try:
            out, _ = rans.decode(memoryview(bytes(damaged)), 0, values.size, index, length, laplace.tables())
            caught += not np.array_equal(out, values)
        except KVFormatError:
            caught += 1
    assert caught == len(range(2 + 4 * 8, len(data), 7))
    with pytest.raises(KVFormatError):
        rans.decode(memoryview(data[:-3]), 0, values.size, index, length, laplace.tables())


def test_tables_and_inputs_are_checked():
    with pytest.raises(KVFormatError, match="sum"):
        rans.Tables(np.array([[1, 2]]), np.zeros(1), np.full(1, -1))
    tables = rans.Tables(rans.normalize_counts(np.array([5.0, 1.0, 0.0]))[None], np.zeros(1), np.full(1, -1))
    with pytest.raises(KVFormatError, match="outside"):
        rans.encode(np.array([2]), np.zeros(1, np.int64), 1, tables)
    assert laplace.index_of_scale(np.array([laplace.scale_of_index(30)]))[0] == 30
