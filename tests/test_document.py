import json

import pytest

from ctxzip.document import CompressionResult, Document, Span, as_documents
from ctxzip.errors import InvalidInputError


def test_strings_and_documents_are_normalised_with_ids():
    docs = as_documents(["a", Document("b", id="x", metadata={"k": 1}), {"text": "c", "metadata": {"m": 2}}])
    assert [d.id for d in docs] == ["0", "x", "2"]
    assert docs[1].metadata == {"k": 1}
    assert docs[2].metadata == {"m": 2}


def test_single_string_is_one_document():
    assert as_documents("hello") == [Document("hello", "0", {})]


def test_input_metadata_is_copied_not_shared():
    original = Document("t", "a", {"k": [1]})
    (doc,) = as_documents([original])
    doc.metadata["new"] = 1
    assert "new" not in original.metadata


@pytest.mark.parametrize("bad", [None, b"bytes", 5, [5], [Document("a", "x"), Document("b", "x")], [{"no": "text"}], [Document(None)]])
def test_bad_inputs_raise(bad):
    with pytest.raises(InvalidInputError):
        as_documents(bad)


def test_result_to_dict_is_json_ready_with_numbers_as_numbers():
    result = CompressionResult("t", [Document("t", "0")], [Span("0", 0, 1)], 10, 4, "truncate", timings={"total": 0.1})
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ratio"] == pytest.approx(0.4)
    assert data["kept"] == [{"doc_id": "0", "start": 0, "end": 1}]
    assert data["original_tokens"] == 10 and data["compressed_tokens"] == 4
    assert CompressionResult("", [], [], 0, 0, "x").ratio == 1.0
