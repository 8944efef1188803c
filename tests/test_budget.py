import math

import pytest

from ctxzip.budget import Budget, HuggingFaceCounter, TiktokenCounter, as_budget, get_token_counter
from ctxzip.errors import InvalidBudgetError, UnknownTokenizerError


def test_tokens_budget_is_a_hard_cap_independent_of_input():
    assert Budget(tokens=100).resolve(10_000) == 100


def test_ratio_budget_floors():
    assert Budget(ratio=0.33).resolve(100) == 33
    assert Budget(ratio=0.5).resolve(7) == 3
    assert Budget(ratio=1.0).resolve(7) == 7


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"tokens": 10, "ratio": 0.5}, {"tokens": 0}, {"tokens": -5}, {"tokens": 2.5}, {"tokens": True},
     {"ratio": 0.0}, {"ratio": 1.5}, {"ratio": -0.1}, {"ratio": math.nan}, {"ratio": "half"}, {"tokens": 5, "tokenizer": ""}],
)
def test_malformed_budgets_raise(kwargs):
    with pytest.raises(InvalidBudgetError):
        Budget(**kwargs)


def test_as_budget_accepts_shorthands():
    assert as_budget(50) == Budget(tokens=50)
    assert as_budget(0.25) == Budget(ratio=0.25)
    with pytest.raises(InvalidBudgetError):
        as_budget(None)
    with pytest.raises(InvalidBudgetError):
        as_budget("100")


def test_cl100k_counts_offline_and_matches_known_values():
    counter = get_token_counter("cl100k_base")
    assert isinstance(counter, TiktokenCounter)
    assert counter.count("hello world") == 2
    assert counter.count("") == 0
    assert counter.count_many(["hello world", "", "tiktoken is great!"]) == [2, 0, 6]


def test_counters_are_cached():
    assert get_token_counter("cl100k_base") is get_token_counter("cl100k_base")


def test_smollm2_tokenizer_counts_and_batches():
    counter = get_token_counter("smollm2")
    assert isinstance(counter, HuggingFaceCounter)
    texts = ["Hello world", "你好，世界 🙂", ""]
    assert counter.count_many(texts) == [counter.count(t) for t in texts]
    assert counter.count("Hello world") == 2  # no BOS/EOS counted


def test_local_hugging_face_tokenizer_path(tmp_path):
    from ctxzip.models import load_tokenizer

    load_tokenizer("minilm").save_pretrained(tmp_path / "tok")
    counter = get_token_counter(str(tmp_path / "tok"))
    assert counter.count("hello world") == 2


def test_unknown_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownTokenizerError):
        get_token_counter(str(tmp_path / "missing-dir-that-exists-not"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownTokenizerError):
        get_token_counter(str(tmp_path / "empty"))


@pytest.mark.parametrize("tokenizer", ["cl100k_base", "smollm2"])
def test_token_starts_are_character_offsets(tokenizer):
    counter = get_token_counter(tokenizer)
    text = "héllo 你好 🙂👍🏽 wörld e\u0301 x"
    starts = counter.token_starts(text)
    assert len(starts) == counter.count(text)
    assert starts[0] == 0 and all(0 <= s < len(text) for s in starts)
    assert list(starts) == sorted(starts)


def test_unit_costs_in_context_add_up_to_the_document():
    import numpy as np

    from ctxzip.document import Document
    from ctxzip.segment import word_spans
    from ctxzip.select import Units, unit_costs

    text = "The quick brown fox 12345 jumps. 東京 🙂 " * 10
    starts, ends = word_spans(text)
    units = Units.build(np.zeros(len(starts), int), starts, ends, np.zeros(len(starts)))
    costs = unit_costs([Document(text, "0")], units, get_token_counter("cl100k_base"))
    assert costs.sum() == get_token_counter("cl100k_base").count(text)
