"""CodeCompressor end to end: budgets, skeletons that parse, several files, edge inputs."""

import re
import tracemalloc

import numpy as np
import pytest

from test_code_samples import SAMPLES
from ctxzip.compressors.base import make_request
from ctxzip import Budget, Document, Protection, create_compressor, get_token_counter
from ctxzip.code_analysis.render import parses
from ctxzip.compressors.code import CodeCompressor
from ctxzip.errors import BudgetTooSmallError, InvalidInputError

QUERY = "def load(self, name):\n    \"\"\"Load a named item from the store's path.\"\"\""


def _lexical(**options) -> CodeCompressor:
    return CodeCompressor(scorer="lexical", **options)


@pytest.mark.parametrize("language", sorted(SAMPLES))
@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_output_parses_and_fits_for_every_language(language, ratio):
    path, source = SAMPLES[language]
    result = _lexical().compress([Document(source, id=path)], query=QUERY, budget=Budget(ratio=ratio))
    counter = get_token_counter("cl100k_base")
    assert result.compressed_tokens == counter.count(result.text) <= result.budget_tokens
    assert result.compressed_tokens < result.original_tokens
    assert parses(result.text, language), result.text
    assert result.info["languages"] == {path: language}


def test_skeleton_keeps_signatures_and_elides_bodies():
    path, source = SAMPLES["python"]
    for ratio in (0.45, 0.6):
        text = _lexical(skeleton_share=0.5).compress([Document(source, id=path)], query=QUERY, budget=Budget(ratio=ratio)).text
        assert "import os" in text and "class Store(OrderedDict):" in text
        assert "full = os.path.join(self.path, name)" in text  # the most relevant method survives...
        assert parses(text, "python")
    # ...and with room for signatures, others keep theirs with an elided body
    assert re.search(r"\n    def \w+\(self[^)]*\):\n        \.\.\.\n", text), text


def test_kept_spans_point_into_the_originals():
    path, source = SAMPLES["python"]
    result = _lexical().compress([Document(source, id=path)], query=QUERY, budget=Budget(ratio=0.4))
    assert result.kept and all(span.doc_id == path for span in result.kept)
    for span in result.kept:
        assert source[span.start:span.end] in result.text


def test_several_files_at_once_keep_their_ids_and_metadata():
    documents = [
        Document(SAMPLES[language][1], id=f"doc{i}", metadata={"path": SAMPLES[language][0], "owner": i})
        for i, language in enumerate(["python", "go", "java", "rust"])
    ]
    result = _lexical().compress(documents, query=QUERY, budget=Budget(ratio=0.35))
    assert result.compressed_tokens <= result.budget_tokens
    assert result.info["languages"] == {"doc0": "python", "doc1": "go", "doc2": "java", "doc3": "rust"}
    by_id = {d.id: d for d in result.documents}
    for i, language in enumerate(["python", "go", "java", "rust"]):
        if f"doc{i}" in by_id:
            assert by_id[f"doc{i}"].metadata == {"path": SAMPLES[language][0], "owner": i}
            assert parses(by_id[f"doc{i}"].text, language)
    assert {span.doc_id for span in result.kept} <= {"doc0", "doc1", "doc2", "doc3"}


def test_budget_in_a_hugging_face_tokenizer_is_a_hard_cap():
    path, source = SAMPLES["typescript"]
    for tokens in (20, 45, 90):
        result = _lexical().compress([Document(source, id=path)], query=QUERY, budget=Budget(tokens=tokens, tokenizer="smollm2"))
        assert result.compressed_tokens == get_token_counter("smollm2").count(result.text) <= tokens
        assert parses(result.text, "typescript")


def test_empty_and_whitespace_inputs_come_back_unchanged():
    for text in ("", "   \n\t\n"):
        result = _lexical().compress(text, query=QUERY, budget=Budget(tokens=5))
        assert result.info.get("unchanged") and result.text == ("" if not text else text)
    # whitespace only but over budget: one unit, the solver cannot keep it; nothing is invented
    result = _lexical().compress("\n" * 50 + " " * 400, budget=Budget(tokens=1))
    assert result.compressed_tokens <= 1


def test_input_under_budget_is_returned_unchanged():
    path, source = SAMPLES["c"]
    result = _lexical().compress([Document(source, id=path)], query=QUERY, budget=Budget(tokens=10_000))
    assert result.text == source and result.ratio == 1.0


def test_budget_smaller_than_protected_spans_raises():
    path, source = SAMPLES["python"]
    compressor = _lexical(protection=Protection(force_tokens=("os.path.join(self.path, name)", "OrderedDict")))
    with pytest.raises(BudgetTooSmallError):
        compressor.compress([Document(source, id=path)], query=QUERY, budget=Budget(tokens=12))
    result = compressor.compress([Document(source, id=path)], query=QUERY, budget=Budget(tokens=80))
    assert "os.path.join(self.path, name)" in result.text and parses(result.text, "python")


def test_mixed_scripts_survive_byte_for_byte():
    path, source = SAMPLES["python"]
    result = _lexical().compress([Document(source, id=path)], query="读取 load 🚀 مرحبا", budget=Budget(ratio=0.7))
    for span in result.kept:
        assert source[span.start:span.end] in result.text
    kept_scripts = [s for s in ("读取", "🚀", "مرحبا", "二倍", "数据") if s in result.text]
    assert kept_scripts and all(s in source for s in kept_scripts)
    assert parses(result.text, "python")


def test_unparseable_code_falls_back_to_lines_and_still_fits():
    source = "def broken(:\n    return 1\n\n" + "\n".join(f"value_{i} = load({i})" for i in range(60)) + "\n"
    result = _lexical().compress([Document(source, id="broken.py")], query="load value_7", budget=Budget(ratio=0.2))
    assert result.info["languages"] == {"broken.py": "lines"}
    assert result.compressed_tokens <= result.budget_tokens and "value_7 = load(7)" in result.text
    for span in result.kept:
        assert source[span.start:span.end] in result.text


def test_without_a_query_earlier_code_is_kept():
    path, source = SAMPLES["java"]
    result = _lexical().compress([Document(source, id=path)], budget=Budget(ratio=0.5))
    assert result.info["scorer"] == "position" and result.text.startswith("package demo;")
    assert parses(result.text, "java")


def test_a_200k_token_input_stays_within_bounded_memory():
    path, source = SAMPLES["python"]
    body = "\n\n".join(source.replace("def ", f"def v{i}_").replace("class Store", f"class Store{i}") for i in range(900))
    counter = get_token_counter("cl100k_base")
    assert counter.count(body) > 200_000
    tracemalloc.start()
    result = _lexical().compress([Document(body, id="big.py")], query=QUERY, budget=Budget(ratio=0.1))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.compressed_tokens <= result.budget_tokens
    assert peak < 400 * len(body)  # Python-side allocations grow linearly with the input, ~300 MB here
    assert parses(result.text, "python")


def test_registry_and_bad_options():
    assert isinstance(create_compressor("code", scorer="lexical"), CodeCompressor)
    with pytest.raises(InvalidInputError):
        CodeCompressor(scorer="bm42")
    with pytest.raises(InvalidInputError):
        CodeCompressor(language="cobol")
    with pytest.raises(InvalidInputError):
        CodeCompressor(skeleton_share=2.0)
    with pytest.raises(InvalidInputError):
        _lexical().compress("x = 1\n" * 100, query=3, budget=10)


def test_forced_language_and_score_units():
    path, source = SAMPLES["rust"]
    compressor = _lexical(language="rs")
    counter = get_token_counter("cl100k_base")
    units = compressor.score_units(make_request([Document(source)], QUERY))
    assert len(units) > 5 and np.all(np.isfinite(units.score))
    result = compressor.compress(source, query=QUERY, budget=Budget(ratio=0.5))
    assert result.info["languages"] == {"0": "rust"} and parses(result.text, "rust")
