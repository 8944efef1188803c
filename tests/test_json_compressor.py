"""The `json` method through the shared solver: valid JSON within the budget, every kept value exact."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxzip import Budget, get_token_counter
from ctxzip.document import rebuild
from ctxzip.errors import BudgetTooSmallError
from ctxzip.registry import create_compressor
from ctxzip.structured.json_check import elision_problems

COUNTER = get_token_counter("cl100k_base")
compressor = create_compressor("json")

records = st.fixed_dictionaries({
    "id": st.integers(0, 10**6), "name": st.text(min_size=1, max_size=20),
    "tags": st.lists(st.text(max_size=8), max_size=4),
    "body": st.text(max_size=300), "score": st.floats(allow_nan=False, allow_infinity=False),
})
payloads = st.one_of(
    st.lists(records, min_size=5, max_size=40),
    st.fixed_dictionaries({"hits": st.lists(records, min_size=5, max_size=40), "total": st.integers(),
                           "next": st.none() | st.text(max_size=30)}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=payloads, indent=st.sampled_from([None, 1, 2]), ratio=st.floats(0.05, 0.9), query=st.text(max_size=40))
def test_compressed_json_parses_fits_and_keeps_values_exact(value, indent, ratio, query):
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    try:
        result = compressor.compress([{"text": text, "id": "t"}], query=query or None, budget=Budget(ratio=ratio))
    except BudgetTooSmallError:  # the skeleton alone does not fit: said so, never broken JSON
        return
    assert result.compressed_tokens <= result.budget_tokens
    assert COUNTER.count(result.text) == result.compressed_tokens
    assert elision_problems(text, result.text) == []
    assert rebuild([result.documents[0].__class__(text, "t")], result.kept, result.inserted)["t"] == result.text


def test_the_record_the_query_asks_for_is_kept_whole():
    rows = [{"id": f"q{n:03d}", "question": f"What is item {n}?", "answers": [f"answer {n}", f"alt {n}"]} for n in range(200)]
    text = json.dumps({"rows": rows}, indent=2)
    result = compressor.compress(text, query="What answers are stored for q137?", budget=Budget(ratio=0.1))
    kept = json.loads(result.text)["rows"]
    assert rows[137] in kept and rows[0] in kept and rows[-1] in kept
    assert elision_problems(text, result.text) == []
    assert result.info["content"] == {"json": 1, "lines": 0, "text": 0}


def test_a_budget_below_the_skeleton_is_a_clear_error():
    text = json.dumps({f"key{n}": n for n in range(50)})  # one object: all keys, nothing to drop
    with pytest.raises(BudgetTooSmallError):
        compressor.compress(text, budget=Budget(tokens=20))
