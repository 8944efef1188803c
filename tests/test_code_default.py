"""The default CodeCompressor (graph ranking): budget-exact, parses where the input parsed, ids and
spans kept, repositories, and bad input (code that does not parse, mixed languages, a 200k-token file)."""

import textwrap

import pytest

from test_code_samples import SAMPLES
from ctxzip import Budget, Document, get_token_counter
from ctxzip.code_analysis.chunking import LINES
from ctxzip.code_analysis.render import parses
from ctxzip.compressors.code import CodeCompressor
from ctxzip.document import rebuild
from ctxzip.errors import BudgetTooSmallError, InvalidInputError

QUERY = '    def save(self, name, data):\n        """Write data under name in self.path and count a hit."""'


def _check(result, documents, tokenizer="cl100k_base"):
    """Budget-exact, and kept + inserted rebuild every output document."""
    assert result.compressed_tokens == get_token_counter(tokenizer).count(result.text) <= result.budget_tokens
    rebuilt = rebuild(documents, result.kept, result.inserted)
    originals = {d.id: d for d in documents}
    for out in result.documents:
        assert rebuilt[out.id] == out.text
        assert out.metadata == originals[out.id].metadata
    assert result.text == "\n\n".join(d.text for d in result.documents)


@pytest.mark.parametrize("language", sorted(SAMPLES))
@pytest.mark.parametrize("ratio", [0.3, 0.6])
def test_every_language_fits_parses_and_rebuilds(language, ratio):
    path, source = SAMPLES[language]
    documents = [Document(source, id=path)]
    result = CodeCompressor().compress(documents, query=QUERY, budget=Budget(ratio=ratio))
    _check(result, documents)
    assert 0 < result.compressed_tokens < result.original_tokens
    assert parses(result.text, language), result.text
    assert result.info["scorer"] == "graph" and result.info["languages"] == {path: language}
    assert result.model is None and result.timings["forward"] == 0.0


def test_the_gap_decides_what_is_kept():
    path, source = SAMPLES["python"]
    cut = source.index("    def save")
    documents = [Document(source, id=path, metadata={"cut": cut})]
    result = CodeCompressor().compress(documents, query=QUERY, budget=Budget(ratio=0.45))
    _check(result, documents)
    text = result.text
    # the class around the gap, its members the query names, and the imports they need
    assert "class Store(OrderedDict):" in text and "self.path = path" in text and "self.hits = 0" in text
    assert "import os" in text
    assert result.info["gap"] == {"document": path, "offset": cut, "inferred": False}
    assert parses(text, "python")


def test_without_a_hint_the_gap_is_inferred():
    path, source = SAMPLES["python"]
    result = CodeCompressor().compress([Document(source, id=path)], query=QUERY, budget=Budget(ratio=0.45))
    assert result.info["gap"]["inferred"] and "self.path = path" in result.text


def test_hugging_face_budgets_are_hard_caps_too():
    path, source = SAMPLES["typescript"]
    for tokens in (25, 60, 120):
        result = CodeCompressor().compress([Document(source, id=path)], query=QUERY,
                                           budget=Budget(tokens=tokens, tokenizer="smollm2"))
        assert result.compressed_tokens == get_token_counter("smollm2").count(result.text) <= tokens
        assert parses(result.text, "typescript")


LEXER = textwrap.dedent('''\
    """Tokens."""
    import re

    PATTERN = re.compile(r"\\w+")


    class Token:
        def __init__(self, kind, text):
            self.kind = kind
            self.text = text


    def tokenize(source):
        """Split source into tokens."""
        return [Token("word", m.group()) for m in PATTERN.finditer(source)]


    def unrelated_statistics(values):
        """Mean and spread of some numbers, used nowhere near the parser."""
        mean = sum(values) / len(values)
        spread = max(values) - min(values)
        return mean, spread, sorted(values)[len(values) // 2], [v * v for v in values]
    ''')
PARSER = textwrap.dedent('''\
    """A parser."""
    from pkg.lexer import tokenize, Token


    class Parser:
        def __init__(self, source):
            self.tokens = tokenize(source)
            self.position = 0

        def peek(self):
            """The next token."""
            return self.tokens[self.position]

        def advance(self):
            """Consume one token."""
            token = self.peek()
            self.position += 1
            return token
    ''')


def test_a_repository_is_compressed_together():
    documents = [
        Document(LEXER, id="pkg/lexer.py", metadata={"owner": "lex"}),
        Document(PARSER, id="pkg/parser.py", metadata={"cut": PARSER.index("    def advance")}),
    ]
    query = '    def expect(self, kind) -> Token:\n        """Consume the next token, which must be of `kind`."""'
    result = CodeCompressor().compress(documents, query=query, budget=Budget(ratio=0.4))
    _check(result, documents)
    by_id = {d.id: d.text for d in result.documents}
    assert "self.tokens = tokenize(source)" in by_id["pkg/parser.py"]  # the query's own file first
    assert "class Token:" in by_id["pkg/lexer.py"]  # reached through the import
    assert "unrelated_statistics" not in result.text
    assert result.info["gap"]["document"] == "pkg/parser.py"
    for out in result.documents:
        assert parses(out.text, "python"), out.text


def test_code_that_does_not_parse_falls_back_to_lines():
    source = SAMPLES["python"][1].replace("def load(self, name):", "def load(self, name:")  # a syntax error
    documents = [Document(source, id="broken.py")]
    result = CodeCompressor().compress(documents, query=QUERY, budget=Budget(ratio=0.4))
    _check(result, documents)
    assert result.info["languages"] == {"broken.py": LINES}
    assert result.text.strip() and not result.inserted  # lines are plain slices


def test_mixed_languages_each_keep_their_grammar():
    documents = [Document(SAMPLES[language][1], id=f"doc{i}", metadata={"path": SAMPLES[language][0]})
                 for i, language in enumerate(["python", "go", "javascript", "rust"])]
    documents.append(Document('{"items": [1, 2, 3], "name": "config"}\n' * 20, id="data"))
    documents.append(Document("Release notes. The store keeps items in order now.\n" * 15, id="notes.md"))
    documents.append(Document("```python\nx = 1\n```\nSome *markdown* around a fence.\n" * 10, id="readme"))
    result = CodeCompressor().compress(documents, query=QUERY, budget=Budget(ratio=0.35))
    _check(result, documents)
    assert result.info["languages"] == {"doc0": "python", "doc1": "go", "doc2": "javascript", "doc3": "rust",
                                        "data": LINES, "notes.md": LINES, "readme": LINES}
    languages = dict(zip(["doc0", "doc1", "doc2", "doc3"], ["python", "go", "javascript", "rust"]))
    for out in result.documents:
        if out.id in languages:
            assert parses(out.text, languages[out.id]), out.text


def _big_module(tokens: int) -> str:
    counter = get_token_counter("cl100k_base")
    block = SAMPLES["python"][1].split("class Store", 1)[1]
    parts, total, i = ['import os\nfrom collections import OrderedDict\n\nLIMIT = 10\n\n'], 0, 0
    while total < tokens:
        part = f"\n\ndef helper_{i}(value):\n    return value * {i}\n\n\nclass Store{i}" + block
        parts.append(part)
        total += counter.count(part)
        i += 1
    return "".join(parts)


def test_a_200k_token_file():
    source = _big_module(205_000)
    documents = [Document(source, id="big.py", metadata={"cut": len(source) // 2})]
    result = CodeCompressor().compress(documents, query=QUERY, budget=Budget(ratio=0.1))
    assert result.original_tokens >= 200_000
    _check(result, documents)
    assert parses(result.text, "python")


@pytest.mark.parametrize("query", [None, "", "how are items saved?", "🚀🚀🚀"])
def test_any_query_or_none(query):
    path, source = SAMPLES["python"]
    documents = [Document(source, id=path)]
    result = CodeCompressor().compress(documents, query=query, budget=Budget(ratio=0.4))
    _check(result, documents)
    assert result.text.strip() and parses(result.text, "python")


def test_a_budget_too_small_for_any_unit_is_an_error():
    path, source = SAMPLES["python"]
    with pytest.raises(BudgetTooSmallError):
        CodeCompressor().compress([Document(source, id=path)], query=QUERY, budget=Budget(tokens=1))


@pytest.mark.parametrize("options", [{"scorer": "magic"}, {"rerank": "oracle"}, {"rerank_top": 1}, {"rerank_top": 2.5},
                                     {"example_weight": -1.0}])
def test_bad_options(options):
    with pytest.raises(InvalidInputError):
        CodeCompressor(**options)


def test_the_language_model_rescores_only_the_top_functions(tiny_lm):
    path, source = SAMPLES["python"]
    compressor = CodeCompressor(rerank="perplexity", rerank_top=2, model=tiny_lm)
    scorer = compressor.get_scorer("perplexity")
    seen = []
    original = scorer.score
    scorer.score = lambda texts, query: seen.append(len(texts)) or original(texts, query)
    documents = [Document(source, id=path)]
    result = compressor.compress(documents, query=QUERY, budget=Budget(ratio=0.5))
    _check(result, documents)
    assert seen == [2]  # one call, two functions
    assert result.model == tiny_lm and result.timings["forward"] > 0
