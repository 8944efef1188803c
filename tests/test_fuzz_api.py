"""Fuzzing the Python API of every registered method: any input gives a valid result or a clear ctxzip error."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ctxzip import Budget, Document, available_methods, create_compressor, get_token_counter
from ctxzip.errors import CtxzipError
from tests.support.contract import check_provenance, factories
from tests.support.fuzz import budgets, documents, examples, queries

FUZZ = settings(max_examples=examples(20), deadline=None, suppress_health_check=list(HealthCheck))


@functools.lru_cache(maxsize=None)
def compressor_for(method: str, tiny_lm: str, tiny_token_classifier: str):
    make = factories(tiny_lm, tiny_token_classifier).get(method, lambda **o: create_compressor(method, **o))
    return make()


@pytest.mark.parametrize("method", available_methods())
@FUZZ
@given(texts=documents, query=queries, budget=budgets)
def test_any_input_gives_a_valid_result_or_a_clear_error(method, tiny_lm, tiny_token_classifier, texts, query, budget):
    compressor = compressor_for(method, tiny_lm, tiny_token_classifier)
    docs = [Document(t, str(i), {"n": i}) for i, t in enumerate(texts)]
    try:
        result = compressor.compress(docs, query, budget)
    except CtxzipError as error:
        event(f"refused: {type(error).__name__}")
        return  # a clear error, of the type the README promises
    event("compressed" if not result.info.get("unchanged") else "under budget, unchanged")
    assert result.compressed_tokens <= result.budget_tokens
    assert get_token_counter("cl100k_base").count(result.text) == result.compressed_tokens
    check_provenance(result, docs)
    original = "\n\n".join(t for t in texts if t)
    if result.text == "" and original.strip():
        assert result.info.get("empty_context"), "content dropped without a word"


@FUZZ
@given(texts=documents, tokens=st.integers(1, 100))
def test_budgets_in_another_tokenizer_hold_too(texts, tokens):
    docs = [Document(t, str(i)) for i, t in enumerate(texts)]
    try:
        result = create_compressor("random").compress(docs, None, Budget(tokens=tokens, tokenizer="smollm2"))
    except CtxzipError as error:
        event(f"refused: {type(error).__name__}")
        return
    event("compressed")
    assert get_token_counter("smollm2").count(result.text) == result.compressed_tokens <= tokens
    check_provenance(result, docs)
