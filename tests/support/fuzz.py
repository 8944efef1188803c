"""Generated inputs for the fuzz tests: texts from every Unicode category, and how many to try.

`make fuzz` raises the counts (CTXZIP_FUZZ_SCALE) and prints hypothesis' statistics per entry point.
"""

from __future__ import annotations

import os

from hypothesis import strategies as st

SCALE = float(os.environ.get("CTXZIP_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """`n` examples in the test suite, `n * CTXZIP_FUZZ_SCALE` under `make fuzz`."""
    return max(1, int(n * SCALE))


# Pieces real inputs have and naive code trips on: scripts, emoji with modifiers, combining marks,
# RTL and zero-width marks, NUL and control characters, lone surrogates, code, numbers, long runs.
PIECES = [
    "你好，世界。", "東京は日本の首都です。", "مرحبا بالعالم.", "שָׁלוֹם", "🙂👍🏽🇫🇷👨‍👩‍👧", "e\u0301\u0301", "\u200f\u200e\u202e",
    "\u200b\ufeff", "\x00", "\x07\x1b[31m", "   ", "\n\n", "\t", "\r\n", "", "x" * 400,
    "def f(x):\n    return x + 1\n", "{\"a\": [1, 2, {\"b\": null}]}", "3.14159", "https://ex.org/a?b=c",
    " the quick brown fox.", " Who wrote it?", "...", "!!!", "the and of to", "Mr. J. K. Smith Jr. went home.",
]
valid_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=30)), max_size=25).map("".join)
# Now and then a lone surrogate (half a UTF-16 pair), which must be refused, not crash anything.
with_surrogate = st.tuples(valid_text, st.sampled_from(["\ud800", "\udfff"]), valid_text).map("".join)
text = st.integers(1, 20).flatmap(lambda k: with_surrogate if k == 13 else valid_text)
documents = st.lists(text, max_size=4)
queries = st.one_of(st.none(), text)
# Mostly budgets that make sense (a share of the input, or tokens), now and then one that must be refused.
valid_budgets = st.one_of(st.floats(0.05, 0.95), st.floats(0.05, 0.95), st.integers(1, 300))
invalid_budgets = st.one_of(st.integers(-2, 0), st.floats(1.01, 3), st.sampled_from([None, "half", float("nan"), True]))
budgets = st.integers(1, 10).flatmap(lambda k: invalid_budgets if k == 7 else valid_budgets)
