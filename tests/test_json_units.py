"""JSON units: any mask that honours groups and parents renders valid JSON with exact values and counted markers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxzip.errors import InvalidInputError
from ctxzip.structured.json_check import elision_problems, kept_values
from ctxzip.structured.json_scoring import score_json_units
from ctxzip.structured.json_units import ITEMS_MARKER, LONG_VALUE_CHARS, SMALL_CONTAINER_CHARS, is_json, parse_json_units
from ctxzip.structured.lines import parse_line_units, score_line_units
from ctxzip.structured.relevance import bm25_relevance

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.text(min_size=LONG_VALUE_CHARS, max_size=LONG_VALUE_CHARS + 40),  # long member values may be elided
    st.text(alphabet=st.characters(codec=None, categories=["Cs", "Zl", "Cc", "Mn"]), max_size=6),  # surrogates, NUL
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=8), st.dictionaries(st.text(max_size=6), inner, max_size=6)),
    max_leaves=40,
)
containers = st.one_of(st.lists(json_values, max_size=10), st.dictionaries(st.text(max_size=6), json_values, max_size=8))
layouts = st.sampled_from([
    {}, {"indent": 2}, {"indent": 0}, {"separators": (",", ":")}, {"indent": "\t", "ensure_ascii": False},
    {"ensure_ascii": False, "separators": (" , ", " : ")},
])


def serialised(value, layout) -> str:
    return json.dumps(value, **layout)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=containers, layout=layouts, small=st.sampled_from([0, 0, 40, SMALL_CONTAINER_CHARS]), data=st.data())
def test_any_consistent_mask_renders_faithful_json(value, layout, small, data):
    text = serialised(value, layout)
    units = parse_json_units(text, small_chars=small)
    # The units cover the text end to end, in order.
    assert units.start[0] == 0 and units.end[-1] == len(text)
    assert np.array_equal(units.start[1:], units.end[:-1])
    assert units.render(np.ones(len(units), dtype=bool)) == text
    wish = np.array(data.draw(st.lists(st.booleans(), min_size=len(units), max_size=len(units))), dtype=bool)
    mask = units.consistent(wish)
    out = units.render(mask)
    assert json.loads(out) is not None or out == "null"
    assert elision_problems(text, out) == []


@settings(max_examples=100, deadline=None)
@given(value=containers, layout=layouts)
def test_dropping_everything_droppable_leaves_the_root_skeleton(value, layout):
    text = serialised(value, layout)
    units = parse_json_units(text, small_chars=0)
    out = units.render(units.consistent(np.zeros(len(units), dtype=bool)))
    assert elision_problems(text, out) == []
    if isinstance(value, dict):
        assert list(json.loads(out)) == list(value)  # keys are never dropped


def test_markers_say_how_many_items_and_where():
    text = json.dumps({"hits": [{"id": i, "t": f"title {i}"} for i in range(10)], "total": 10}, indent=2)
    units = parse_json_units(text, small_chars=0)
    hits = units.containers[1]
    mask = np.ones(len(units), dtype=bool)
    for child in hits.children[2:9]:
        mask[child.unit] = False
    out = units.render(units.consistent(mask))
    items = json.loads(out)["hits"]
    assert [h["id"] for h in items if isinstance(h, dict)] == [0, 1, 9]
    match = ITEMS_MARKER.match(items[2])
    assert match and match.groups() == ("7", "10", "2", "8")
    assert json.loads(out)["total"] == 10
    assert kept_values(text, out) == (3 * 2 + 1, 10 * 2 + 1)


def test_a_long_string_value_gives_way_to_a_marker_and_keeps_its_key():
    body = "x" * (LONG_VALUE_CHARS + 50)
    text = json.dumps({"name": "a", "body": body})
    units = parse_json_units(text)
    mask = np.ones(len(units), dtype=bool)
    mask[units.containers[0].children[1].unit] = False
    out = json.loads(units.render(units.consistent(mask)))
    assert out == {"name": "a", "body": f"... value omitted: {len(body)} characters ..."}


def test_the_checker_catches_a_changed_value_a_lost_item_and_a_miscounted_marker():
    original = json.dumps({"a": [1, 2, 3, 4], "b": "x"})
    assert elision_problems(original, json.dumps({"a": [1, 2, 3, 5], "b": "x"}))
    assert elision_problems(original, json.dumps({"a": [1, 2, 4], "b": "x"}))
    assert elision_problems(original, json.dumps({"a": [1, "... 3 of 4 items omitted here (indices 1-3) ..."]}))
    bad_count = json.dumps({"a": [1, "... 1 of 4 items omitted here (index 1) ...", 4], "b": "x"})
    assert elision_problems(original, bad_count)
    assert elision_problems(original, json.dumps({"a": [1, 2.0, 3, 4], "b": "x"}))  # 2 is not 2.0
    assert elision_problems(original, '{"a": [1, 2, 3, 4], "b": "x"')
    good = json.dumps({"a": [1, "... 2 of 4 items omitted here (indices 1-2) ...", 4], "b": "x"})
    assert elision_problems(original, good) == []


@pytest.mark.parametrize("text", ["", "  ", "1", '"s"', "null", "[1,]", "{'a': 1}", "[NaN]", "[1] [2]", "[Infinity]"])
def test_text_that_is_not_a_json_container_is_refused(text):
    assert not is_json(text)
    with pytest.raises(InvalidInputError):
        parse_json_units(text)


def test_short_containers_are_one_piece_no_marker_inside_them():
    text = json.dumps([{"id": i, "answers": ["a", "b"], "tags": []} for i in range(30)])
    units = parse_json_units(text)
    assert len(units.containers) == 1 and len(units) == 32  # the root's brackets and 30 items
    out = units.render(units.consistent(np.array([True] + [i % 3 == 0 for i in range(30)] + [True])))
    assert elision_problems(text, out) == [] and '"answers": ["a", "b"]' in out


def test_containers_deeper_than_the_limit_are_single_units():
    deep = json.dumps([[[[[[1, 2]]]]], 3])
    units = parse_json_units(deep, max_depth=3, small_chars=0)
    out = units.render(units.consistent(np.zeros(len(units), dtype=bool)))
    assert elision_problems(deep, out) == []
    assert len(units.containers) == 3


def test_relevant_items_outrank_the_middle_and_head_and_tail_come_first():
    hits = [{"title": f"unrelated page {i}", "text": "filler words about nothing"} for i in range(30)]
    hits[17] = {"title": "Eiffel Tower", "text": "The Eiffel Tower was completed in 1889 in Paris."}
    units = parse_json_units(json.dumps(hits))
    scores = score_json_units(units, "When was the Eiffel Tower completed?")
    items = [scores[c.unit] for c in units.containers[0].children]
    assert items[17] == max(items)
    without_query = [score_json_units(units, None)[c.unit] for c in units.containers[0].children]
    assert min(without_query[0], without_query[1], without_query[-1]) > max(without_query[2:-1])


def test_repeated_items_score_almost_nothing():
    units = parse_json_units(json.dumps(["same row"] * 10 + ["other"]))
    scores = [score_json_units(units, None)[c.unit] for c in units.containers[0].children]
    assert max(scores[1:10]) < 0.05 * scores[0]


@pytest.mark.parametrize("texts,query", [(["...", "!!!"], "what"), (["😀 😀"], "😀"), (["the of and"], "the"),
                                         ([""], "x"), (["cat"], None), (["cat"], "   ")])
def test_relevance_without_words_is_zero_not_a_crash(texts, query):
    assert np.array_equal(bm25_relevance(texts, query), np.zeros(len(texts)))


# -- logs and tables -------------------------------------------------------------------------------

LOG = "\n".join(
    [f"2026-03-14T10:00:{s:02d}Z INFO [worker-{s % 4}] GET /api/items 200 {s * 3}ms" for s in range(40)]
    + ["2026-03-14T10:00:41Z ERROR [worker-2] request failed: ValueError: bad id 'N/A'",
       "Traceback (most recent call last):", '  File "app.py", line 12, in handle', "    int(x)",
       "ValueError: invalid literal for int() with base 10: 'N/A'"]
    + [f"2026-03-14T10:01:{s:02d}Z DEBUG [scheduler] heartbeat ok queue={s}" for s in range(30)]
)


def _marker_counts(out: str) -> int:
    import re

    return sum(int(m) for m in re.findall(r"^\[\.\.\. (\d+) (?:more )?lines?", out, flags=re.M))


@settings(max_examples=100, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=75, max_size=75))
def test_any_line_mask_keeps_lines_exact_and_counts_the_rest(mask):
    units = parse_line_units(LOG)
    assert units.render(np.ones(len(units), dtype=bool)) == LOG
    out = units.render(np.asarray(mask))
    if not any(mask):  # nothing kept: the text is gone as a whole, no marker stands for it
        assert out == ""
        return
    kept = [line for line in out.split("\n") if not line.startswith("[... ")]
    assert kept == [line for line, keep in zip(LOG.split("\n"), mask) if keep]
    assert _marker_counts(out) == len(mask) - sum(mask)


def test_repeated_log_lines_collapse_and_the_failure_stays():
    units = parse_line_units(LOG)
    scores = score_line_units(units, "Why did the request fail?")
    mask = np.zeros(len(units), dtype=bool)
    mask[np.argsort(-scores, kind="stable")[:12]] = True
    out = units.render(mask)
    assert "ValueError: invalid literal for int() with base 10: 'N/A'" in out
    assert "request failed" in out
    assert "more lines like the one above" in out or "lines omitted" in out
    assert len(out) < len(LOG) / 3


def test_a_table_keeps_its_header_row():
    table = "id,name,score\n" + "\n".join(f"{i},row {i},{i * 7 % 10}" for i in range(50))
    units = parse_line_units(table)
    assert units.protected[0] and not units.protected[1:].any()
