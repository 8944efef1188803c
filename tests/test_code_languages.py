"""Language detection: what is not code is compressed as lines, never taken for Python (issue 15, item 2)."""

import json

import pytest

from ctxzip import Budget, Document
from ctxzip.code_analysis.chunking import LINES, chunk_documents
from ctxzip.code_analysis.languages import sniff_language
from ctxzip.compressors.code import CodeCompressor

JSON_TEXT = json.dumps({"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(40)]}, indent=2)
NOT_CODE = {
    "json": JSON_TEXT,
    "jsonl": "\n".join(json.dumps({"id": i, "text": f"record {i}"}) for i in range(60)),
    "emoji run": "😀🎉🚀" * 300,
    "emoji words": "😀 great day 🎉 party 🚀\n" * 80,
    "one word per line": "hello\n" * 200,
    "prose": "Just some prose. It is not code, only a paragraph of English text.\n" * 30,
    "number lists": "[1, 2, 3]\n" * 60,
}


@pytest.mark.parametrize("name", sorted(NOT_CODE))
def test_what_is_not_code_is_not_sniffed_as_a_language(name):
    assert sniff_language(NOT_CODE[name]) is None
    assert chunk_documents([Document(NOT_CODE[name])]).languages == [LINES]


@pytest.mark.parametrize("name", sorted(NOT_CODE))
def test_not_code_with_a_query_keeps_lines_within_budget(name):
    text = NOT_CODE[name]
    result = CodeCompressor(scorer="lexical").compress(text, query="what is item 3", budget=Budget(ratio=0.3))
    assert 0 < result.compressed_tokens <= result.budget_tokens
    assert result.text.strip()
    for span in result.kept:
        assert text[span.start:span.end] in result.text


def test_a_json_file_by_name_is_lines_too():
    units = chunk_documents([Document(JSON_TEXT, id="data.json")])
    assert units.languages == [LINES] and len(units) > 10


@pytest.mark.parametrize("text, language", [
    ("import os\n\ndef f(x):\n    return os.path.join(x, 'a')\n", "python"),
    ("x = 1\ny = x + 2\n", "python"),
    ("package main\n\nfunc main() {\n\tprintln(1)\n}\n", "go"),
    ("function add(a, b) {\n  return a + b;\n}\n", "javascript"),
])
def test_code_without_a_name_is_still_recognised(text, language):
    assert sniff_language(text) == language
