"""Property tests of the shared budget solver over arbitrary unicode, in two tokenizers."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxzip.budget import Budget, get_token_counter
from ctxzip.compressors.random_select import RandomCompressor
from ctxzip.document import Document
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from ctxzip.protect import Protection
from ctxzip.document import rebuild
from ctxzip.select import SelectionOptions, Units, render, select_under_budget

PIECES = [
    "你好，世界。", "東京は日本の首都です", "مرحبا بالعالم", "🙂👍🏽🇫🇷", "e\u0301\u0301", "   ", "\n\n", "\t", "",
    "x" * 300, "def f(x):\n    return x + 1\n", "KEEP42", " the", " quick brown fox.", "3.14159", "https://ex.org/a?b=c",
]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=40)), max_size=30).map("".join)


def check_result(result, docs, budget_tokens, counter):
    assert result.compressed_tokens <= budget_tokens
    assert counter.count(result.text) == result.compressed_tokens
    # Each output document is its kept spans, in order, sliced from the original.
    by_id = {d.id: d.text for d in docs}
    for out in result.documents:
        rebuilt = "".join(by_id[s.doc_id][s.start : s.end] for s in result.kept if s.doc_id == out.id)
        assert out.text in (rebuilt, rebuilt.lstrip())  # unchanged inputs keep leading whitespace
    starts = [(s.doc_id, s.start) for s in result.kept]
    order = {d.id: i for i, d in enumerate(docs)}
    assert starts == sorted(starts, key=lambda k: (order[k[0]], k[1]))


@pytest.mark.parametrize("tokenizer", ["cl100k_base", "smollm2"])
def test_solver_never_exceeds_budget_and_slices_originals(tokenizer):
    counter = get_token_counter(tokenizer)

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(doc_texts=st.lists(texts, min_size=1, max_size=3), fraction=st.floats(0.01, 1.0), seed=st.integers(0, 5))
    def run(doc_texts, fraction, seed):
        docs = [Document(t, str(i)) for i, t in enumerate(doc_texts)]
        original = counter.count("\n\n".join(t for t in doc_texts if t))
        budget_tokens = max(1, int(original * fraction))
        protection = Protection(patterns=(r"KEEP\d+",))
        try:
            result = RandomCompressor(seed=seed, protection=protection).compress(
                docs, budget=Budget(tokens=budget_tokens, tokenizer=tokenizer)
            )
        except BudgetTooSmallError as error:
            # protected spans that do not fit, or a budget below the cheapest unit (never a silent empty output)
            assert any(protection.find(t) for t in doc_texts) or "cannot hold any unit" in str(error)
            return
        check_result(result, docs, budget_tokens, counter)
        for t in doc_texts:  # protected spans survive
            for s, e in protection.find(t):
                assert t[s:e] in result.text

    run()


def test_protected_spans_over_budget_raise():
    text = "alpha 1111 beta 2222 gamma 3333 delta 4444 " * 5
    with pytest.raises(BudgetTooSmallError):
        RandomCompressor(protection=Protection(numbers=True)).compress(text, budget=Budget(tokens=3))


def test_best_scores_win_and_order_is_kept():
    text = "one two three four five six"
    counter = get_token_counter("cl100k_base")
    starts, ends = np.array([0, 3, 7, 13, 18, 23]), np.array([3, 7, 13, 18, 23, 27])
    units = Units.build([0] * 6, starts, ends, [0.1, 0.9, 0.2, 0.8, 0.3, 0.7])
    selection = select_under_budget([Document(text, "0")], units, 3, counter)
    assert selection.text == "two four six"
    assert selection.tokens <= 3


def test_repair_when_joined_text_costs_more_than_parts():
    # Adjacent digit runs merge differently when joined; the solver must count the final string.
    counter = get_token_counter("cl100k_base")
    text = "".join(f"{i % 10}" for i in range(200))
    starts = np.arange(200)
    units = Units.build(np.zeros(200, int), starts, starts + 1, np.linspace(1, 0, 200))
    for budget in (1, 5, 17, 40):
        selection = select_under_budget([Document(text, "0")], units, budget, counter)
        assert counter.count(selection.text) <= budget
        assert selection.text == text[: len(selection.text)]  # highest scores are the head


def test_units_must_be_sorted_and_disjoint():
    with pytest.raises(InvalidInputError):
        Units.build([0, 0], [5, 0], [6, 3], [1, 1])
    with pytest.raises(InvalidInputError):
        Units.build([0, 0], [0, 2], [3, 4], [1, 1])
    with pytest.raises(InvalidInputError):
        Units.build([0], [0], [1], [float("nan")])


def test_render_joins_documents():
    docs = [Document("a b", "0"), Document("c", "1")]
    units = Units.build([0, 0, 1], [0, 1, 0], [1, 3, 1], [1, 1, 1])
    assert render(docs, units, np.array([True, False, True])).text == "a\n\nc"


COUNTER = get_token_counter("cl100k_base")
WORDS = "alpha beta gamma delta epsilon zeta eta theta"


def word_units(text: str, scores, **extra) -> Units:
    starts, ends = [], []
    for word in text.split(" "):
        start = text.index(word, ends[-1] if ends else 0)
        starts.append(ends[-1] if ends else 0)
        ends.append(start + len(word))
    return Units.build([0] * len(starts), starts, ends, scores, **extra)


def test_selectable_mask_and_groups_and_parents():
    doc = [Document(WORDS, "0")]
    scores = [8, 7, 6, 5, 4, 3, 2, 1]
    # Not selectable: beta is never kept, though it scores high.
    picked = select_under_budget(doc, word_units(WORDS, scores, selectable=[True, False] + [True] * 6), 3, COUNTER)
    assert "beta" not in picked.text and picked.text.startswith("alpha")
    # A group: eta (low score) comes with alpha.
    grouped = select_under_budget(doc, word_units(WORDS, scores, group=[0, -1, -1, -1, -1, -1, 0, -1]), 3, COUNTER)
    assert "alpha" in grouped.text and "eta" in grouped.text
    # A parent: theta (best score) only with gamma, which it depends on.
    parent = [-1, -1, -1, -1, -1, -1, -1, 2]
    dependent = select_under_budget(doc, word_units(WORDS, [1, 2, 0, 3, 4, 5, 6, 9], parent=parent), 2, COUNTER)
    assert dependent.text.split() == ["gamma", "theta"]


def test_solver_options_dedup_floor_top_documents_order():
    docs = [Document("Paris is in France. Paris is in France. Lyon is too.", "a"),
            Document("Berlin is in Germany. Bonn was its capital.", "b")]
    starts = [[0, 19, 39], [0, 21]]
    ends = [[19, 39, 52], [21, 43]]
    units = Units.build([0, 0, 0, 1, 1], sum(starts, []), sum(ends, []), [0.9, 0.8, 0.1, 0.7, 0.2])
    dedup = select_under_budget(docs, units, 12, COUNTER, SelectionOptions(deduplicate=1.0))
    assert dedup.text.count("Paris is in France.") == 1 and "Berlin" in dedup.text
    assert dedup.info["duplicates_removed"] == 1
    top = select_under_budget(docs, units, 12, COUNTER, SelectionOptions(top_documents=1))
    assert "Berlin" not in top.text and top.info["documents_kept"] == ["a"]
    floor = select_under_budget(docs, units, 12, COUNTER, SelectionOptions(min_score=0.95))
    assert floor.text == "" and floor.info["empty_context"]
    ordered = select_under_budget(docs, Units.build([0, 0, 0, 1, 1], sum(starts, []), sum(ends, []), [0.1, 0.1, 0.1, 0.9, 0.8]),
                                  30, COUNTER, SelectionOptions(order="relevance"))
    assert ordered.text.startswith("Berlin") and [s.doc_id for s in ordered.kept][0] == "b"
    with pytest.raises(InvalidInputError):
        SelectionOptions(order="sideways")


def test_without_skip_the_fill_stops_at_the_first_unit_that_does_not_fit():
    doc = [Document("short words then a veryveryverylongword and more short words", "0")]
    text = doc[0].text
    units = word_units(text, list(range(len(text.split(" ")), 0, -1)))
    budget = COUNTER.count("short words then a") + 1
    greedy = select_under_budget(doc, units, budget, COUNTER)
    prefix = select_under_budget(doc, units, budget, COUNTER, SelectionOptions(skip=False))
    assert text.startswith(prefix.text) and not text.startswith(greedy.text)


def test_placeholders_are_reported_and_rebuild_the_output():
    doc = [Document(WORDS, "0")]

    def placeholders(mask):
        # One "[...]" where each run of dropped words starts.
        runs = [i for i in range(len(mask)) if not mask[i] and (i == 0 or mask[i - 1])]
        return [(0, int(units.start[i]), " [...]") for i in runs]

    units = word_units(WORDS, [8, 1, 1, 5, 1, 1, 1, 7], placeholders=placeholders)
    picked = select_under_budget(doc, units, 8, COUNTER)
    assert "[...]" in picked.text and picked.tokens <= 8
    assert rebuild(doc, picked.kept, picked.inserted) == {"0": picked.doc_texts[0]}
