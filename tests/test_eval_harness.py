"""The evaluation harness: fixed splits that never overlap, metrics, and a small runner run."""

import pytest

from eval import datasets
from eval.metrics import answer_recall, bootstrap_ci, normalize_answer, supporting_recall, text_supporting_recall
from eval.runner import hotpotqa_cases, parse_methods, run
from ctxzip.document import Span


def test_hotpotqa_splits_are_disjoint_and_stable():
    eval_ids = {e.id for e in datasets.load_hotpotqa("eval")}
    train_ids = {e.id for e in datasets.load_hotpotqa("train")}
    assert not eval_ids & train_ids
    assert len(eval_ids) + len(train_ids) == 7405
    assert len(eval_ids) == 1466  # fixed by sha1 of the id


def test_squad_splits_by_article():
    eval_titles = {e.title for e in datasets.load_squad("eval")}
    train_titles = {e.title for e in datasets.load_squad("train")}
    assert eval_titles and train_titles and not eval_titles & train_titles
    assert all(not e.is_impossible for e in datasets.load_squad("eval", answerable=True, limit=50))


def test_other_loaders():
    assert len(datasets.load_gsm8k("eval")) == 1319
    assert "Let's think step by step" in datasets.load_gsm8k_prompt()
    bbh_eval = {e.id for e in datasets.load_bbh("eval")}
    assert bbh_eval and not bbh_eval & {e.id for e in datasets.load_bbh("train")}
    assert "\r" not in datasets.load_wikitext2()[:10000]
    assert len(datasets.load_humaneval()) == 164
    modules = datasets.load_stdlib_modules("eval", limit=3)
    assert modules and all(m.path.endswith(".py") for m in modules)


def test_supporting_spans_point_at_the_gold_sentences():
    example = datasets.load_hotpotqa("eval", limit=1)[0]
    docs = {d.id: d.text for d in example.documents()}
    for doc_id, start, end in example.supporting_spans():
        sentence = docs[doc_id][start:end]
        assert sentence and sentence == sentence.strip()


def test_metrics():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert answer_recall(["Paris"], "It is in paris, France.") == 1.0
    assert answer_recall("Par", "It is in Paris.") == 0.0  # whole words only
    gold = [("a", 0, 10), ("b", 5, 15)]
    assert supporting_recall(gold, [Span("a", 0, 10)]) == 0.5
    assert supporting_recall(gold, [Span("a", 0, 5), Span("b", 0, 20)]) == 0.5
    sentences = ["The tower is in Paris.", "It opened in 1889 to visitors."]
    assert text_supporting_recall(sentences, "paris: the tower is in it") == 0.5  # all 5 words of the first, 2 of 6 of the second
    assert text_supporting_recall(sentences, "tower Paris 1889 opened visitors in to It") == 0.5  # word order is not checked; 3 of 5 < 80%
    mean, low, high = bootstrap_ci([0, 1, 1, 1])
    assert low <= mean == 0.75 <= high


def test_runner_compares_methods_on_the_same_examples():
    cases = hotpotqa_cases("eval", limit=5)
    rows = run(cases, parse_methods("truncate,random:unit=sentence;seed=1"), [0.3])
    assert [r["method"] for r in rows] == ["truncate", "random:unit=sentence;seed=1"]
    for row in rows:
        assert row["examples"] == 5 and row["within_budget"] == 1.0
        assert 0 <= row["supporting_recall"] <= 1
