"""Chunking and rendering of code: units cover the text, skeletons parse, bad code falls back to lines."""

import numpy as np
import pytest

from test_code_samples import SAMPLES
from ctxzip import Document
from ctxzip.code_analysis.chunking import BODY, CLOSE, HEADER, IMPORT, LINES, chunk_documents, line_units
from ctxzip.code_analysis.languages import declared_language, language_for_path
from ctxzip.code_analysis.render import as_units, parses
from ctxzip.document import rebuild
from ctxzip.errors import InvalidInputError
from ctxzip.select import render


def close_under_parents(units, mask: np.ndarray) -> np.ndarray:
    """Every ancestor of a kept unit, and the closing brace of every kept header, kept too."""
    keep = mask.tolist()
    for i in range(len(keep) - 1, -1, -1):  # parents precede children
        if keep[i] and units.parent[i] >= 0:
            keep[units.parent[i]] = True
    keep = np.asarray(keep, dtype=bool)
    closes = np.flatnonzero(units.kind == CLOSE)
    keep[closes] = keep[units.parent[closes]]
    return keep


def render_code(documents, units, mask):
    """(output documents, joined text, number of placeholders); checks the output rebuilds from its provenance."""
    selection = render(documents, as_units(documents, units, np.zeros(len(units))), mask)
    rebuilt = rebuild(documents, selection.kept, selection.inserted)
    assert [rebuilt.get(d.id, "") for d in documents] == selection.doc_texts
    return selection.doc_texts, selection.text, sum(1 for i in selection.inserted if i.text.strip())


def _consistent_random_mask(units, rng) -> np.ndarray:
    """A random choice of units in which nothing is kept without the header it depends on."""
    keep = (rng.random(len(units)) < rng.random()).tolist()
    for i, parent in enumerate(units.parent.tolist()):
        if parent >= 0 and not keep[parent]:
            keep[i] = False
    return close_under_parents(units, np.asarray(keep) | units.required)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_units_cover_the_file_exactly_and_find_definitions(language):
    path, source = SAMPLES[language]
    assert parses(source, language)
    documents = [Document(source, id=path)]
    units = chunk_documents(documents)
    assert units.languages == [language]
    assert "".join(units.texts(documents)) == source
    assert np.all(units.start[1:] == units.end[:-1])
    assert (units.kind == HEADER).sum() >= 2 and (units.kind == BODY).sum() >= 3
    assert (units.kind == IMPORT).sum() >= 1
    # every body statement depends on a header
    body = units.kind == BODY
    assert np.all(units.kind[units.parent[body]] == HEADER)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_every_consistent_selection_renders_code_that_parses(language):
    path, source = SAMPLES[language]
    documents = [Document(source, id=path)]
    units = chunk_documents(documents)
    rng = np.random.default_rng(7)
    elided = 0
    for _ in range(150):
        _, text, placeholders = render_code(documents, units, _consistent_random_mask(units, rng))
        elided += placeholders
        assert parses(text, language), text
    assert elided > 0  # the placeholders were exercised


def test_placeholders_are_language_correct():
    for language, marker in (("python", "..."), ("java", "/* ... */")):
        path, source = SAMPLES[language]
        documents = [Document(source, id=path)]
        units = chunk_documents(documents)
        mask = close_under_parents(units, (units.kind == HEADER) | (units.kind == IMPORT) | units.required)
        _, text, placeholders = render_code(documents, units, mask)
        assert placeholders >= (units.kind == HEADER).sum() - 1
        assert marker in text and parses(text, language)


def test_mixed_scripts_map_bytes_to_characters():
    source = 'def 数据(x):\n    """بيانات 🚀"""\n    return x + "二"\n\n\ndef other():\n    return "مرحبا 🚀"\n'
    documents = [Document(source, id="m.py")]
    units = chunk_documents(documents)
    assert units.languages == ["python"]
    texts = units.texts(documents)
    assert "".join(texts) == source
    assert texts[0].startswith("def 数据(x):") and any("def other():" in t for t in texts)


@pytest.mark.parametrize(
    "source, path, blocks",
    [
        ("def broken(:\n    return 1\n\n\nx = 2\n", "broken.py", 2),  # syntax error
        ("class A:\n    def f(self):\n        return [1,\n", "truncated.py", 1),  # file cut short
        ("puts 'hello'\n\nclass Foo\n  def bar; end\nend\n", "script.rb", 2),  # no grammar
        ("just some notes\n\nwith two paragraphs\n", "notes.txt", 2),
    ],
)
def test_code_that_does_not_parse_falls_back_to_line_blocks(source, path, blocks):
    documents = [Document(source, id=path)]
    units = chunk_documents(documents)
    assert units.languages == [LINES]
    assert "".join(units.texts(documents)) == source
    assert units.n_chunks == blocks  # one chunk per blank-line block
    assert len(units) == sum(1 for line in source.splitlines() if line.strip())  # a unit per line
    assert np.all(units.parent == -1)


def test_line_fallback_cuts_long_lines_and_handles_whitespace():
    content, *_ = line_units("x" * 1200 + "\n\n   \n")
    assert content[0][0] == 0 and content[-1][1] == 1200 and np.all(content[1:, 0] == content[:-1, 1])
    assert np.all(content[:, 1] - content[:, 0] <= 500)
    content, kind, parent, chunk, *_ = line_units("   \n\t\n")
    assert len(content) == 1 and chunk == [0]


def test_language_detection():
    assert language_for_path("src/a/b.tsx") == "tsx"
    assert language_for_path("README.md") is None
    assert declared_language(Document("x", id="lib.rs")) == ("rust", True)
    assert declared_language(Document("x", metadata={"path": "A.java"})) == ("java", True)
    assert declared_language(Document("x", metadata={"language": "golang"})) == ("go", True)
    assert declared_language(Document("x", id="0")) == (None, False)
    with pytest.raises(InvalidInputError):
        declared_language(Document("x", metadata={"language": "cobol"}))


def test_unnamed_documents_are_sniffed():
    units = chunk_documents([Document(SAMPLES["go"][1]), Document(SAMPLES["python"][1])])
    assert units.languages == ["go", "python"]


def test_closing_braces_follow_their_headers():
    path, source = SAMPLES["cpp"]
    documents = [Document(source, id=path)]
    units = chunk_documents(documents)
    closes = np.flatnonzero(units.kind == CLOSE)
    assert len(closes) and np.all(units.kind[units.parent[closes]] == HEADER)
    # the `;` after the class body stays with the class's closing brace
    texts = units.texts(documents)
    assert any(t.strip() == "};" for t in (texts[i] for i in closes))


def test_a_dropped_trailing_comment_leaves_no_placeholder():
    source = "def f(x):\n    obs = []  # trailing note\n    obs.append(x)\n    return obs\n"
    documents = [Document(source, id="c.py")]
    units = chunk_documents(documents)
    texts = units.texts(documents)
    comment = next(i for i, t in enumerate(texts) if t.lstrip().startswith("#"))
    mask = np.ones(len(units), dtype=bool)
    mask[comment] = False
    _, text, placeholders = render_code(documents, units, mask)
    assert placeholders == 0 and "# trailing note" not in text and parses(text, "python")
