"""The definition/reference graph, the gap, the query analysis and the graph ranking of code units."""

import numpy as np
import pytest

from ctxzip import Document, get_token_counter
from ctxzip.code_analysis.chunking import HEADER, chunk_documents
from ctxzip.code_analysis.gap import locate_gap
from ctxzip.code_analysis.graph import ATTRIBUTE, CLASS, FUNCTION, IMPORT, METHOD, VARIABLE, build_graph
from ctxzip.code_analysis.query import analyse_query
from ctxzip.code_analysis.rank import rank_units
from ctxzip.code_analysis.relevance import FEATURES, definition_features, use_probability
from ctxzip.select import unit_costs

MODULE = '''from collections import OrderedDict as Ordered, deque
import os.path
import json as js

LIMIT: int = 3
LEFT, RIGHT = "l", "r"


def helper(value, key=LIMIT):
    """Double a value."""
    def inner():
        return RIGHT
    return js.dumps(value, indent=key) + inner()


class Base:
    def size(self):
        return len(self.items)


class Store(Base):
    """A store of named items."""

    kind = "store"

    def __init__(self, path):
        self.path = path
        if path:
            self.items, self.order = Ordered(), deque()

    def load(self, name):
        full = os.path.join(self.path, name)
        return helper(full) if self.size() < LIMIT else Store.kind

    def drop(self, name):
        self.items.pop(name)


try:
    import yaml
except ImportError:
    yaml = None
'''


def _graph(text=MODULE, path="pkg/store.py"):
    return build_graph([Document(text, id=path)], ["python"])


def _find(graph, name, kind=None):
    found = [i for i, d in enumerate(graph.definitions) if d.name == name and (kind is None or d.kind == kind)]
    assert found, name
    return found[0]


def test_definitions_of_every_kind_with_owners():
    graph = _graph()
    kinds = {(d.name, d.kind) for d in graph.definitions}
    assert {("Ordered", IMPORT), ("deque", IMPORT), ("os", IMPORT), ("js", IMPORT), ("yaml", IMPORT),
            ("LIMIT", VARIABLE), ("LEFT", VARIABLE), ("RIGHT", VARIABLE), ("yaml", VARIABLE),
            ("helper", FUNCTION), ("Base", CLASS), ("Store", CLASS), ("kind", VARIABLE), ("load", METHOD),
            ("path", ATTRIBUTE), ("items", ATTRIBUTE), ("order", ATTRIBUTE)} <= kinds
    assert ("inner", FUNCTION) not in kinds  # a local function is part of its enclosing one
    store = _find(graph, "Store")
    assert graph.definitions[_find(graph, "items")].owner == store
    assert graph.definitions[_find(graph, "load")].owner == store
    imported = graph.definitions[_find(graph, "Ordered")]
    assert (imported.module, imported.imported) == ("collections", "OrderedDict")
    anchor = graph.definitions[_find(graph, "helper")].anchor
    assert MODULE[anchor:anchor + 6] == "helper"


def test_edges_follow_names_members_bases_and_class_attributes():
    graph = _graph()
    names = lambda d: {graph.definitions[t].name for t in graph.edges[d]}  # noqa: E731
    assert {"os", "helper", "LIMIT", "path", "size", "Store", "kind"} <= names(_find(graph, "load"))
    assert {"js", "LIMIT", "RIGHT"} <= names(_find(graph, "helper"))  # `inner`'s reads count for helper
    assert {"items"} <= names(_find(graph, "size"))  # a base reading what its subclass sets
    assert graph.bases[_find(graph, "Store")] == [_find(graph, "Base")]
    assert "size" in {graph.definitions[t].name for t in graph.edges[_find(graph, "load")]}
    hops = graph.distances({_find(graph, "load"): 0.0})
    assert hops[_find(graph, "helper")] == 1 and hops[_find(graph, "RIGHT")] == 2
    assert np.isinf(hops[_find(graph, "drop")])


def test_imports_between_documents_are_edges():
    library = Document("def parse(text):\n    return text.split()\n\n\nclass Token:\n    pass\n", id="pkg/lexer.py")
    user = Document("from pkg.lexer import parse\nfrom . import lexer\n\n\ndef run(x):\n    return parse(x), lexer.Token()\n",
                    id="pkg/main.py")
    graph = build_graph([library, user], ["python", "python"])
    run = _find(graph, "run")
    reached = {(graph.definitions[t].doc, graph.definitions[t].name) for t in graph.edges[run]}
    assert (1, "parse") in reached  # the import itself
    hops = graph.distances({run: 0.0})
    assert hops[_find(graph, "parse", FUNCTION)] == 1  # run -> lexer.parse, through its import
    assert hops[_find(graph, "Token")] == 1  # run -> lexer.Token through the module alias


def test_other_languages_get_functions_and_classes():
    source = "class Box {\n  open() { return helper(this.lid); }\n}\nfunction helper(x) { return x; }\n"
    graph = build_graph([Document(source, id="a.js")], ["javascript"])
    assert {(d.name, d.kind) for d in graph.definitions} >= {("Box", CLASS), ("open", METHOD), ("helper", FUNCTION)}
    assert _find(graph, "helper") in graph.edges[_find(graph, "open")]


def test_query_analysis():
    info = analyse_query('    def save(self, name: str) -> Store:\n        """Save `name` with self.path and LIMIT."""')
    assert info.function == "save" and info.is_method and info.indent == 4
    assert {"Store", "LIMIT", "name"} <= info.names and info.members == {"path"}
    assert not analyse_query("").function and analyse_query("").empty


def test_gap_from_the_hint_and_the_enclosing_class():
    cut = MODULE.index("    def drop")
    document = Document(MODULE, id="store.py", metadata={"cut": cut})
    graph = build_graph([document], ["python"])
    gap = locate_gap([document], graph, analyse_query("    def save(self, name):\n        ..."))
    assert (gap.doc, gap.offset, gap.inferred) == (0, cut, False)
    assert gap.cls == _find(graph, "Store")
    # A cut right after the class: an indented query still belongs to it, a top-level one does not.
    end = MODULE.index("try:")
    document = Document(MODULE, id="store.py", metadata={"cut": end})
    assert locate_gap([document], graph, analyse_query("    def save(self):\n        ...")).cls == _find(graph, "Store")
    assert locate_gap([document], graph, analyse_query("def save(x):\n    ...")).cls == -1


def test_gap_inferred_from_the_names_the_query_mentions():
    document = Document(MODULE, id="store.py")
    graph = build_graph([document], ["python"])
    gap = locate_gap([document], graph, analyse_query('    def clear(self):\n        """Empty self.items and self.order."""'))
    assert gap.inferred and gap.cls == _find(graph, "Store")
    nothing = locate_gap([document], graph, analyse_query(""))
    assert nothing.inferred and nothing.offset == len(MODULE)


def test_features_and_probabilities_have_one_row_per_definition():
    document = Document(MODULE, id="store.py", metadata={"cut": MODULE.index("    def drop")})
    graph = build_graph([document], ["python"])
    query = analyse_query('    def save(self, name):\n        """Write an item to self.path."""')
    features = definition_features(graph, locate_gap([document], graph, query), query, [MODULE])
    assert features.shape == (len(graph), len(FEATURES))
    p = use_probability(features)
    assert np.all((p > 0) & (p < 1))
    # the member the query names is likelier than an unrelated module constant
    assert p[_find(graph, "path", ATTRIBUTE)] > p[_find(graph, "LEFT")]


def test_rank_puts_headers_before_what_depends_on_them():
    documents = [Document(MODULE, id="store.py", metadata={"cut": MODULE.index("    def drop")})]
    units = chunk_documents(documents)
    costs = unit_costs(documents, units, get_token_counter("cl100k_base"))
    ranked = rank_units(documents, units, costs, '    def save(self, name):\n        """Write self.items to self.path."""')
    assert sorted(ranked.order.tolist()) == list(range(len(units)))
    position = np.empty(len(units), dtype=int)
    position[ranked.order] = np.arange(len(units))
    for i, parent in enumerate(units.parent.tolist()):
        if parent >= 0:
            assert position[parent] < position[i]
    assert np.all(np.diff(ranked.priority[ranked.order]) < 0)
    # the statement that defines self.items comes before the body of an unrelated helper
    texts = units.texts(documents)
    defines_items = next(i for i, t in enumerate(texts) if "self.items, self.order" in t)
    helper_return = next(i for i, t in enumerate(texts) if "js.dumps" in t)
    assert position[defines_items] < position[helper_return]
    assert units.kind[ranked.order[0]] in (HEADER,) or texts[ranked.order[0]].strip().startswith(("from", "import"))


@pytest.mark.parametrize("text", ["", "x = (", "😀" * 20])
def test_graph_of_odd_input_does_not_fail(text):
    graph = build_graph([Document(text, id="odd.py")], ["python"])
    assert len(graph.edges) == len(graph)


def test_mutated_code_never_breaks_the_graph_or_the_compressor():
    import random

    from ctxzip import Budget
    from ctxzip.compressors.code import CodeCompressor

    rng = random.Random(0)
    for _ in range(40):
        chars = list(MODULE)
        for _ in range(rng.randint(1, 20)):
            at = rng.randrange(len(chars))
            if rng.random() < 0.5:
                del chars[at]
            else:
                chars.insert(at, rng.choice("():=,.\n \t'\"#@[]{}\\"))
        text = "".join(chars)
        graph = build_graph([Document(text, id="x.py")], ["python"])
        assert len(graph.edges) == len(graph)
        document = Document(text, id="x.py", metadata={"cut": rng.randrange(len(text))})
        result = CodeCompressor().compress([document], query=rng.choice([None, "def f(self):", "LIMIT"]),
                                           budget=Budget(ratio=0.4))
        assert result.compressed_tokens <= result.budget_tokens
