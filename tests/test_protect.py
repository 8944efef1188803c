import numpy as np
import pytest

from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection, overlaps_protected


def spans_text(text, protection):
    return [text[s:e] for s, e in protection.find(text)]


def test_kinds_are_found():
    text = "Call 555-1234 or mail bob@example.com, see https://x.org/a?b=1 and run `pip install x` in 2024."
    assert "bob@example.com" in spans_text(text, Protection(emails=True))
    assert "https://x.org/a?b=1" in spans_text(text, Protection(urls=True))
    assert "`pip install x`" in spans_text(text, Protection(code=True))
    assert {"555", "1234", "2024"} <= set(spans_text(text, Protection(numbers=True)))


def test_code_fences_are_one_span():
    text = "intro\n```python\nx = 1\n\ny = 2\n```\noutro"
    (span,) = spans_text(text, Protection(code=True))
    assert span.startswith("```python") and span.endswith("```")


def test_user_patterns_and_force_tokens_merge_overlaps():
    text = "ID: AB-12-CD and AB-12"
    assert spans_text(text, Protection(patterns=(r"AB-\d+-CD",), force_tokens=("AB-12",))) == ["AB-12-CD", "AB-12"]


def test_nothing_is_protected_by_default():
    assert Protection().find("2024 https://x.org a@b.co `x`") == []
    assert not Protection().enabled


def test_bad_pattern_is_a_clear_error():
    with pytest.raises(InvalidInputError):
        Protection(patterns=("(unclosed",))


def test_overlap_of_units_with_spans():
    starts, ends = np.array([0, 5, 10, 20]), np.array([5, 10, 20, 30])
    assert overlaps_protected(starts, ends, [(7, 8), (19, 21)]).tolist() == [False, True, True, True]
    assert overlaps_protected(starts, ends, []).tolist() == [False] * 4
