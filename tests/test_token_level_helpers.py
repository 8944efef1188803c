"""Windowing and sub-token -> unit aggregation (pure numpy, no model)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ctxzip.token_scoring.aggregate import token_units, unit_mean
from ctxzip.batching import batch_by_length
from ctxzip.token_scoring.windows import plan_windows


@given(st.integers(1, 3000), st.integers(2, 600), st.lists(st.integers(1, 3000), max_size=60))
@settings(max_examples=60, deadline=None)
def test_windows_cover_tokens_in_order_and_respect_the_limit(n, limit, cuts):
    boundaries = np.array(sorted({c for c in cuts if c < n}), dtype=np.int64)
    windows = plan_windows(n, limit, boundaries)
    assert windows[0][0] == 0 and windows[-1][1] == n
    assert all(b - a <= limit and b > a for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    # A window ends at a boundary whenever one lies inside its reach.
    for a, b in windows[:-1]:
        inside = boundaries[(boundaries > a) & (boundaries <= a + limit)]
        if len(inside):
            assert b == inside.max()


def test_windows_fall_back_to_word_starts_inside_long_sentences():
    windows = plan_windows(100, 30, np.array([], dtype=np.int64), fallback=np.array([10, 25, 40, 58, 80]))
    assert windows == [(0, 25), (25, 40), (40, 58), (58, 80), (80, 100)]


@given(st.lists(st.integers(1, 512), min_size=1, max_size=80), st.integers(512, 8192))
@settings(max_examples=40, deadline=None)
def test_batches_hold_every_window_once_within_the_token_cap(lengths, cap):
    batches = batch_by_length(lengths, cap, max_batch_size=16)
    seen = np.sort(np.concatenate(batches))
    assert seen.tolist() == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= cap


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(1, 6)), min_size=1, max_size=40), st.integers(0, 10**6))
@settings(max_examples=60, deadline=None)
def test_unit_mean_matches_a_plain_loop(pieces, seed):
    # Build contiguous units from (gap, length) pieces and tokens at random positions inside them.
    rng = np.random.default_rng(seed)
    starts, ends, position = [], [], 0
    for gap, length in pieces:
        starts.append(position)
        position += gap + length
        ends.append(position)
    starts, ends = np.array(starts), np.array(ends)
    token_starts = np.sort(rng.integers(0, position + 3, size=50))
    values = rng.random(50)
    unit_of = token_units(token_starts, starts, ends)
    means = unit_mean(values, unit_of, len(starts), empty=-1.0)
    for u, (s, e) in enumerate(zip(starts, ends)):
        inside = [v for t, v in zip(token_starts, values) if s <= t < e]
        assert np.isclose(means[u], np.mean(inside) if inside else -1.0)
    assert np.all((unit_of == -1) == (token_starts >= position))


def test_entity_units_keep_names_dates_and_amounts_whole():
    from ctxzip.segment import entity_spans

    text = ("Barack Obama was born on 4 August 1961 in Honolulu, Hawaii. He won $1,200 and 3.5 million votes "
            "at the University of California on March 12, 1990. J. K. Rowling lives in New York City.")
    starts, ends = entity_spans(text)
    units = [text[s:e].strip() for s, e in zip(starts.tolist(), ends.tolist())]
    for entity in ("Barack Obama", "4 August 1961", "$1,200", "3.5 million", "University of California",
                   "March 12, 1990.", "J. K. Rowling", "New York City."):
        assert entity in units, entity
    assert "Hawaii. He" not in units and "Hawaii." in units  # a name does not run across a sentence end
    assert "".join(text[s:e] for s, e in zip(starts.tolist(), ends.tolist())) == text


@given(st.text(alphabet=st.sampled_from(list("Ab c.1,$ \n\t%MJé")), max_size=80))
@settings(max_examples=100, deadline=None)
def test_entity_units_cover_any_text_without_gaps(text):
    from ctxzip.segment import entity_spans, word_spans

    starts, ends = entity_spans(text)
    assert "".join(text[s:e] for s, e in zip(starts.tolist(), ends.tolist())) == text
    assert len(starts) <= max(len(word_spans(text)[0]), 1 if text else 0)
