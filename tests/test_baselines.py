import pytest

from ctxzip import Budget, RandomCompressor, TruncateCompressor, available_methods, create_compressor
from ctxzip.errors import InvalidInputError, UnknownMethodError

TEXT = " ".join(f"word{i}" for i in range(200))


def test_truncate_head_tail_both():
    budget = Budget(tokens=20)
    head = TruncateCompressor(keep="head").compress(TEXT, budget=budget).text
    tail = TruncateCompressor(keep="tail").compress(TEXT, budget=budget).text
    both = TruncateCompressor(keep="both").compress(TEXT, budget=budget).text
    assert TEXT.startswith(head) and head.startswith("word0 word1")
    assert TEXT.endswith(tail) and tail.endswith("word199")
    assert both.startswith("word0") and both.endswith("word199") and len(both) < len(TEXT)


def test_random_is_seeded():
    a = RandomCompressor(seed=1).compress(TEXT, budget=Budget(ratio=0.3)).text
    b = RandomCompressor(seed=1).compress(TEXT, budget=Budget(ratio=0.3)).text
    c = RandomCompressor(seed=2).compress(TEXT, budget=Budget(ratio=0.3)).text
    assert a == b != c


def test_ratio_budget_fills_close_to_target():
    result = RandomCompressor(unit="word").compress(TEXT, budget=Budget(ratio=0.5))
    assert result.budget_tokens == int(0.5 * result.original_tokens)
    assert 0.95 * result.budget_tokens <= result.compressed_tokens <= result.budget_tokens


def test_registry_and_errors():
    assert {"random", "truncate"} <= set(available_methods())
    assert isinstance(create_compressor("truncate", keep="tail"), TruncateCompressor)
    with pytest.raises(UnknownMethodError):
        create_compressor("no-such-method")
    with pytest.raises(InvalidInputError):
        TruncateCompressor(keep="middle")
    with pytest.raises(InvalidInputError):
        RandomCompressor(unit="paragraph").compress(TEXT, budget=Budget(tokens=5))


def test_large_input_is_handled():
    text = "lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20000  # ~220k tokens
    result = TruncateCompressor(unit="sentence").compress(text, budget=Budget(tokens=1000))
    assert result.original_tokens > 200_000
    assert result.compressed_tokens <= 1000
