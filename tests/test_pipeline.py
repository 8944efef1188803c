"""CascadeCompressor: two compressors in a row under one budget, spans mapped to the originals."""

from __future__ import annotations

import pytest

from ctxzip import Budget, Document, create_compressor
from ctxzip.compressors.extractive import ExtractiveCompressor
from ctxzip.compressors.pipeline import CascadeCompressor, compose_provenance
from ctxzip.compressors.random_select import RandomCompressor
from ctxzip.compressors.truncate import TruncateCompressor
from ctxzip.errors import InvalidInputError

DOCS = [
    Document("The harbour opened in 1850. Ships brought tea and silk from distant ports. "
             "Fishermen sold their catch at dawn on the stone quay.", "port", {"kind": "history"}),
    Document("Trains reached the town in 1901. The station had two platforms and a clock tower.", "rail",
             {"kind": "transport"}),
    Document("Bakeries sold rye bread. Cheese came from farms up the valley.", "food", {"kind": "food"}),
]


def cascade(second=None, **options) -> CascadeCompressor:
    first = ExtractiveCompressor(scorer="bm25", rounds=1)
    return CascadeCompressor(first=first, second=second or TruncateCompressor(keep="head"), **options)


def assert_spans_point_into_originals(result, documents):
    by_id = {d.id: d.text for d in documents}
    position = 0
    for span in result.kept:
        piece = by_id[span.doc_id][span.start : span.end].strip()
        assert piece, span
        found = result.text.find(piece, position)
        assert found >= 0, (piece, result.text)
        position = found + len(piece)


@pytest.mark.parametrize("tokens", [12, 20, 35])
def test_cascade_obeys_the_budget_and_traces_back(tokens):
    result = cascade().compress(DOCS, query="When did ships bring tea to the harbour?", budget=Budget(tokens=tokens))
    assert result.compressed_tokens <= tokens
    assert result.method == "cascade"
    assert_spans_point_into_originals(result, DOCS)
    assert [s["method"] for s in result.info["stages"]] == ["extractive", "truncate"]
    assert all(d.metadata == next(o.metadata for o in DOCS if o.id == d.id) for d in result.documents)


def test_first_stage_gets_the_larger_share():
    result = cascade(second_keep=0.5).compress(DOCS, query="harbour tea ships", budget=Budget(tokens=20))
    first, second = result.info["stages"]
    assert first["budget_tokens"] == 40 and second["budget_tokens"] == 20
    assert "tea" in result.text


def test_cascade_with_random_second_stage_and_words():
    result = cascade(second=RandomCompressor(unit="word", seed=3)).compress(DOCS, query="station clock", budget=0.2)
    assert result.compressed_tokens <= result.budget_tokens
    assert_spans_point_into_originals(result, DOCS)


def test_cascade_by_registry_names_and_unchanged_input():
    compressor = create_compressor("cascade", first="extractive", second="truncate",
                                   first_options={"scorer": "bm25"}, second_options={"keep": "head"})
    unchanged = compressor.compress(DOCS, query="bread", budget=Budget(tokens=10_000))
    assert unchanged.info == {"unchanged": True}
    squeezed = compressor.compress(DOCS, query="bread cheese", budget=Budget(tokens=15))
    assert squeezed.compressed_tokens <= 15


def test_bad_share_raises():
    with pytest.raises(InvalidInputError):
        cascade(second_keep=0.0)


def test_provenance_of_spans_that_cross_slices_and_placeholders():
    from ctxzip.document import CompressionResult, Inserted, Span, rebuild

    text = "AAAA BBBB CCCC DDDD"
    # The first stage kept "AAAA", put "<>" where " BBBB" was, and kept " CCCC": "AAAA<> CCCC".
    first = CompressionResult(text="AAAA<> CCCC", documents=[Document("AAAA<> CCCC", "d")],
                              kept=[Span("d", 0, 4), Span("d", 9, 14)], inserted=[Inserted("d", 4, "<>")],
                              original_tokens=4, compressed_tokens=2, method="x")
    # The second stage keeps "AA<> CC" of it ([2, 9)) and adds "!" at its offset 11 (its end).
    second = CompressionResult(text="AA<> CC!", documents=[Document("AA<> CC!", "d")], kept=[Span("d", 2, 9)],
                               inserted=[Inserted("d", 11, "!")], original_tokens=2, compressed_tokens=1, method="y")
    kept, inserted = compose_provenance(first, second)
    assert kept == [Span("d", 2, 4), Span("d", 9, 12)]
    assert inserted == [Inserted("d", 4, "<>"), Inserted("d", 14, "!")]
    assert rebuild([Document(text, "d")], kept, inserted) == {"d": "AA<> CC!"}
