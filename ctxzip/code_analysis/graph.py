"""The definition and reference graph of one or several source files, from tree-sitter.

A *definition* binds a name: a function, a class, a method, a module or class variable, an
attribute assigned through `self.` in a method, or a name an import binds. Each definition knows
its span, where its name stands (the unit holding that offset is the unit that defines it), the
class it belongs to, and what it *reads*: bare names, and `.x` for `self.x`/`cls.x` members.
Reads resolve to definitions (module scope for bare names, the class and its bases for members,
other documents through imports), and those resolutions are the graph's edges.

Python is analysed fully. For the other grammars definitions are the named functions and
containers the chunker knows, and every identifier a definition mentions is a read.
Plain Python over tree-sitter queries: a 100k-character module takes tens of milliseconds.
"""

from __future__ import annotations

import functools
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np

from ctxzip.code_analysis.languages import SPECS, get_parser
from ctxzip.document import Document

FUNCTION, METHOD, CLASS, VARIABLE, ATTRIBUTE, IMPORT = "function", "method", "class", "variable", "attribute", "import"
KINDS = (FUNCTION, METHOD, CLASS, VARIABLE, ATTRIBUTE, IMPORT)
MEMBER_PREFIX = "."  # a read of `self.x` is recorded as ".x"
_SELF = frozenset({b"self", b"cls"})
_COMPOUND = frozenset({
    "if_statement", "try_statement", "with_statement", "for_statement", "while_statement", "match_statement",
    "elif_clause", "else_clause", "except_clause", "except_group_clause", "finally_clause", "case_clause", "block",
})


@dataclass
class Definition:
    name: str
    kind: str
    doc: int
    start: int  # character span of the defining node (a def with its decorators, an assignment statement)
    end: int
    anchor: int  # character offset of the name: the unit holding it defines the name
    owner: int = -1  # the class definition this is a member of
    module: str | None = None  # for imports: the module the name comes from
    imported: str | None = None  # for imports: the name in that module (None: the module itself)


@dataclass
class CodeGraph:
    """Definitions of all documents, what each reads, and the resolved edges between them."""

    definitions: list[Definition] = field(default_factory=list)
    reads: list[Counter] = field(default_factory=list)  # per definition
    module_reads: list[Counter] = field(default_factory=list)  # per document: reads outside any definition
    edges: list[set[int]] = field(default_factory=list)  # definition -> definitions it depends on
    module_names: list[dict[str, list[int]]] = field(default_factory=list)  # per document
    members: dict[int, dict[str, list[int]]] = field(default_factory=dict)  # class -> member name -> definitions
    bases: dict[int, list[int]] = field(default_factory=dict)  # class -> classes it inherits from (any document)
    languages: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.definitions)

    @functools.cached_property
    def reverse_edges(self) -> list[set[int]]:
        users: list[set[int]] = [set() for _ in self.definitions]
        for source, targets in enumerate(self.edges):
            for target in targets:
                users[target].add(source)
        return users

    @functools.cached_property
    def read_counts(self) -> Counter:
        """How many definitions depend on each definition (its popularity in the module)."""
        counts: Counter = Counter()
        for targets in self.edges:
            counts.update(targets)
        return counts

    def resolve(self, doc: int, name: str, owner: int = -1) -> list[int]:
        """Definitions a read of `name` (or `.member`) means in `doc`, inside class `owner`."""
        if name.startswith(MEMBER_PREFIX):
            if owner < 0:
                return []
            # Not in the class or its bases: a mixin reading what a subclass defines.
            return self.member_definitions(owner, name[1:]) or self.any_members(doc).get(name[1:], [])
        return self.module_names[doc].get(name, []) if doc < len(self.module_names) else []

    def any_members(self, doc: int) -> dict[str, list[int]]:
        """Members of every class of a document, by name."""
        cache = self.__dict__.setdefault("_any_members", {})
        if doc not in cache:
            found: dict[str, list[int]] = {}
            for cls, members in self.members.items():
                if self.definitions[cls].doc == doc:
                    for name, indices in members.items():
                        found.setdefault(name, []).extend(indices)
            cache[doc] = found
        return cache[doc]

    def member_definitions(self, cls: int, name: str) -> list[int]:
        """Members called `name` of class `cls` or the classes it inherits from (nearest first)."""
        seen, queue = {cls}, deque([cls])
        while queue:
            current = queue.popleft()
            found = self.members.get(current, {}).get(name)
            if found:
                return found
            for base in self.bases.get(current, []):
                if base not in seen:
                    seen.add(base)
                    queue.append(base)
        return []

    def distances(self, seeds: dict[int, float], max_hops: int = 4) -> np.ndarray:
        """Hops from the seeds along dependencies (what the seeds use, what that uses, ...).

        `seeds` maps a definition to its starting distance (0 for the query's own names); the
        result is inf where nothing reaches."""
        result = np.full(len(self.definitions), np.inf)
        frontier = sorted(seeds.items(), key=lambda item: item[1])
        queue = deque()
        for index, distance in frontier:
            if distance < result[index]:
                result[index] = distance
                queue.append(index)
        while queue:
            current = queue.popleft()
            here = result[current]
            if here >= max_hops:
                continue
            for target in self.edges[current]:
                if here + 1 < result[target]:
                    result[target] = here + 1
                    queue.append(target)
        return result


# -- building ---------------------------------------------------------------------------------


def build_graph(documents: list[Document], languages: list[str | None]) -> CodeGraph:
    """The graph of every document; `languages[i]` is the grammar of document i (None: not code)."""
    graph = CodeGraph(languages=list(languages))
    module_keys: dict[str, int] = {}
    for index, (document, language) in enumerate(zip(documents, languages)):
        collector = _collect_python if language == "python" else _collect_generic
        reads_before = len(graph.definitions)
        module_reads = Counter()
        if language is not None and get_parser(language) is not None and document.text:
            module_reads = collector(graph, index, document.text, language)
        graph.module_reads.append(module_reads)
        names: dict[str, list[int]] = {}
        for d in range(reads_before, len(graph.definitions)):
            definition = graph.definitions[d]
            if definition.owner < 0:
                names.setdefault(definition.name, []).append(d)
            else:
                graph.members.setdefault(definition.owner, {}).setdefault(definition.name, []).append(d)
        graph.module_names.append(names)
        for key in _module_keys(document):
            module_keys.setdefault(key, index)
    _resolve_edges(graph, module_keys)
    return graph


def _module_keys(document: Document) -> list[str]:
    """Dotted names an import could use for this document: "a.b.c", "b.c", "c" for a/b/c.py."""
    path = document.metadata.get("path") or document.id
    if not isinstance(path, str) or not path:
        return []
    parts = list(PurePath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts))]


def _resolve_edges(graph: CodeGraph, module_keys: dict[str, int]) -> None:
    definitions = graph.definitions
    # Imports of another document resolve to the definition they name there.
    import_target: dict[int, list[int]] = {}
    module_alias: dict[int, int] = {}  # import definition -> document it binds as a module
    for d, definition in enumerate(definitions):
        if definition.kind != IMPORT or definition.module is None:
            continue
        base = definition.module.lstrip(".")
        source = module_keys.get(base) if base else None
        if source is not None and source != definition.doc:
            if definition.imported is None:
                module_alias[d] = source
                continue
            target = graph.module_names[source].get(definition.imported)
            if target:
                import_target[d] = target
                continue
        if definition.imported is not None:  # `from pkg import module` or `from . import module`
            submodule = module_keys.get(f"{base}.{definition.imported}" if base else definition.imported)
            if submodule is not None and submodule != definition.doc:
                module_alias[d] = submodule
    # Class bases: names in the class's own reads that resolve to classes.
    for d, definition in enumerate(definitions):
        if definition.kind == CLASS:
            bases = [b for name in graph.reads[d] if not name.startswith(MEMBER_PREFIX)
                     for b in _through_imports(graph.resolve(definition.doc, name), import_target)
                     if definitions[b].kind == CLASS and b != d]
            graph.bases[d] = list(dict.fromkeys(bases))
    graph.edges = []
    for d, definition in enumerate(definitions):
        owner = definition.owner if definition.kind != CLASS else d
        targets: set[int] = set(import_target.get(d, []))
        for name in graph.reads[d]:
            if "." in name[1:]:  # "alias.member" of an imported module
                alias, member = name.split(".", 1)
                for a in graph.resolve(definition.doc, alias):
                    if a in module_alias:
                        targets.update(graph.module_names[module_alias[a]].get(member, []))
                    for cls in _through_imports([a], import_target):
                        if definitions[cls].kind == CLASS:  # Class.member
                            targets.update(graph.member_definitions(cls, member))
                continue
            for found in graph.resolve(definition.doc, name, owner):
                targets.add(found)
                targets.update(import_target.get(found, ()))  # and straight on to what it imports
        if definition.owner >= 0:
            targets.add(definition.owner)  # a member cannot stand without its class
        targets.discard(d)
        graph.edges.append(targets)


def _through_imports(found: list[int], import_target: dict[int, list[int]]) -> list[int]:
    return [t for f in found for t in import_target.get(f, [f])]


class _Spans:
    """Which definition owns each byte: later (inner) definitions overwrite earlier (outer) ones."""

    def __init__(self, size: int) -> None:
        self.owner = np.full(size + 1, -1, dtype=np.int64)

    def paint(self, start: int, end: int, index: int) -> None:
        self.owner[start:end] = index


def _collect_python(graph: CodeGraph, doc: int, text: str, language: str) -> Counter:
    source = text.encode("utf-8", "surrogatepass")
    tree = get_parser(language).parse(source)
    to_char = _char_mapper(text, source)
    spans = _Spans(len(source))
    first = len(graph.definitions)
    owns_reads: list[tuple[int, int, int]] = []  # (byte start, byte end, definition) collecting reads

    def add(name: bytes, kind: str, node, name_node, owner: int, **extra) -> int:
        graph.definitions.append(Definition(
            name.decode("utf-8", "replace"), kind, doc, to_char(node.start_byte), to_char(node.end_byte),
            to_char(name_node.start_byte), owner, **extra))
        graph.reads.append(Counter())
        return len(graph.definitions) - 1

    def targets(node):
        """Identifier nodes an assignment's left side binds (not subscripts or attributes)."""
        if node.type == "identifier":
            yield node
        elif node.type in ("pattern_list", "tuple_pattern", "list_pattern", "expression_list", "tuple", "list"):
            for child in node.named_children:
                yield from targets(child)

    def self_targets(node):
        if node.type == "attribute":
            obj, attribute = node.child_by_field_name("object"), node.child_by_field_name("attribute")
            if obj is not None and obj.type == "identifier" and source[obj.start_byte:obj.end_byte] in _SELF and attribute is not None:
                yield attribute
        elif node.type in ("pattern_list", "tuple_pattern", "list_pattern", "expression_list", "tuple", "list"):
            for child in node.named_children:
                yield from self_targets(child)

    def assignment_of(statement):
        if statement.type != "expression_statement" or not statement.named_children:
            return None
        child = statement.named_children[0]
        return child if child.type in ("assignment", "augmented_assignment") else None

    def visit(nodes, cls: int, method: int, in_function: bool) -> None:
        for node in nodes:
            kind = node.type
            definition = node
            if kind == "decorated_definition":
                definition = node.child_by_field_name("definition")
                kind = definition.type if definition is not None else kind
            if kind in ("function_definition", "class_definition") and definition.child_by_field_name("name") is None:
                continue  # error recovery can leave a definition without its name
            if kind == "function_definition":
                name = definition.child_by_field_name("name")
                body = definition.child_by_field_name("body")
                if in_function:  # a local function: its reads belong to the enclosing one
                    if body is not None:
                        visit(body.named_children, cls, method, True)
                    continue
                is_method = cls >= 0
                index = add(source[name.start_byte:name.end_byte], METHOD if is_method else FUNCTION, node, name, cls)
                owns_reads.append((node.start_byte, node.end_byte, index))
                if body is not None:
                    visit(body.named_children, cls, index if is_method else -1, True)
            elif kind == "class_definition":
                name = definition.child_by_field_name("name")
                body = definition.child_by_field_name("body")
                if in_function:
                    continue
                index = add(source[name.start_byte:name.end_byte], CLASS, node, name, cls)
                owns_reads.append((node.start_byte, node.end_byte, index))
                if body is not None:
                    visit(body.named_children, index, -1, False)
            elif kind in ("import_statement", "import_from_statement", "future_import_statement"):
                if not in_function:
                    _python_imports(node, source, lambda n, nn, **kw: add(n, IMPORT, node, nn, cls, **kw))
            elif (assignment := assignment_of(node)) is not None:
                left = assignment.child_by_field_name("left")
                if left is None:
                    continue
                if not in_function:
                    bound = list(targets(left))
                    for name_node in bound:
                        index = add(source[name_node.start_byte:name_node.end_byte], VARIABLE, node, name_node, cls)
                        if name_node is bound[0]:
                            owns_reads.append((node.start_byte, node.end_byte, index))
                elif method >= 0 and cls >= 0:
                    for attribute in self_targets(left):
                        add(source[attribute.start_byte:attribute.end_byte], ATTRIBUTE, node, attribute, cls)
            elif kind in _COMPOUND:  # definitions inside if/try/with/for blocks count where they stand
                visit(node.named_children, cls, method, in_function)

    visit(tree.root_node.named_children, -1, -1, False)
    for start, end, index in owns_reads:  # outermost first (pre-order), so inner definitions overwrite
        spans.paint(start, end, index)
    module_reads: Counter = Counter()
    for position, name in _python_reads(tree, source):
        owner = int(spans.owner[position])
        (graph.reads[owner] if owner >= 0 else module_reads)[name] += 1
    # A definition does not read its own name where it is bound.
    for index in range(first, len(graph.definitions)):
        graph.reads[index].pop(graph.definitions[index].name, None)
    return module_reads


def _python_imports(node, source: bytes, add) -> None:
    """Add one definition per name an import statement binds."""
    def text(n):
        return source[n.start_byte:n.end_byte]

    if node.type == "import_statement":
        for child in node.named_children:
            if child.type == "aliased_import":
                alias, dotted = child.child_by_field_name("alias"), child.child_by_field_name("name")
                add(text(alias), alias, module=text(dotted).decode("utf-8", "replace"))
            elif child.type == "dotted_name" and child.named_children:
                head = child.named_children[0]
                add(text(head), head, module=text(head).decode("utf-8", "replace"))
        return
    module_node = node.child_by_field_name("module_name")
    module = text(module_node).decode("utf-8", "replace") if module_node is not None else None
    for child in node.children_by_field_name("name"):
        if child.type == "aliased_import":
            alias, dotted = child.child_by_field_name("alias"), child.child_by_field_name("name")
            add(text(alias), alias, module=module, imported=text(dotted).decode("utf-8", "replace"))
        elif child.type == "dotted_name" and child.named_children:
            last = child.named_children[-1]
            add(text(last), last, module=module, imported=text(child).decode("utf-8", "replace"))


@functools.lru_cache(maxsize=None)
def _reads_query(language: str):
    from tree_sitter import Query

    language_object = get_parser(language).language
    if language == "python":
        pattern = """
            (identifier) @name
            (attribute attribute: (identifier) @member)
            (assignment left: (identifier) @bound)
            (assignment left: (pattern_list (identifier) @bound))
            (assignment left: (tuple_pattern (identifier) @bound))
            (keyword_argument name: (identifier) @keyword)
            (function_definition name: (identifier) @bound)
            (class_definition name: (identifier) @bound)
            (parameters (identifier) @bound)
            (default_parameter name: (identifier) @bound)
            (typed_parameter (identifier) @bound)
            (typed_default_parameter name: (identifier) @bound)
            (import_statement) @import
            (import_from_statement) @import
        """
    else:
        kinds = [k for k in ("identifier", "type_identifier", "field_identifier", "property_identifier")
                 if _has_node_type(language_object, k)]
        pattern = " ".join(f"({k}) @name" for k in kinds)
    return Query(language_object, pattern)


@functools.lru_cache(maxsize=None)
def _attributes_query():
    from tree_sitter import Query

    return Query(get_parser("python").language, "(attribute object: (identifier) @object attribute: (identifier) @member)")


def _has_node_type(language_object, kind: str) -> bool:
    try:
        return language_object.id_for_node_kind(kind, True) is not None
    except Exception:  # noqa: BLE001 - older bindings raise instead of returning None
        return False


def _python_reads(tree, source: bytes):
    """(byte offset, name) for every read: bare names, `.x` for self/cls members, and
    "alias.x" for attributes of other names (resolved later against imported modules)."""
    from tree_sitter import QueryCursor

    captures = QueryCursor(_reads_query("python")).captures(tree.root_node)
    skip = {n.start_byte for key in ("member", "keyword", "bound") for n in captures.get(key, [])}
    import_spans = sorted((n.start_byte, n.end_byte) for n in captures.get("import", []))
    starts = np.array([s for s, _ in import_spans], dtype=np.int64)
    ends = np.array([e for _, e in import_spans], dtype=np.int64)

    def in_import(position: int) -> bool:
        i = int(np.searchsorted(starts, position, side="right")) - 1
        return i >= 0 and position < ends[i]

    for node in captures.get("name", []):
        position = node.start_byte
        if position not in skip and not in_import(position):
            yield position, source[position:node.end_byte].decode("utf-8", "replace")
    for _, match in QueryCursor(_attributes_query()).matches(tree.root_node):
        obj, member = match["object"][0], match["member"][0]
        name = source[member.start_byte:member.end_byte].decode("utf-8", "replace")
        head = source[obj.start_byte:obj.end_byte]
        if head in _SELF:
            yield obj.start_byte, MEMBER_PREFIX + name
        else:
            yield obj.start_byte, head.decode("utf-8", "replace") + "." + name


def _collect_generic(graph: CodeGraph, doc: int, text: str, language: str) -> Counter:
    """Named functions and containers as definitions; every identifier inside one is a read."""
    from tree_sitter import QueryCursor

    spec = SPECS[language]
    source = text.encode("utf-8", "surrogatepass")
    tree = get_parser(language).parse(source)
    to_char = _char_mapper(text, source)
    spans = _Spans(len(source))
    first = len(graph.definitions)

    def visit(node, cls: int) -> None:
        for child in node.named_children:
            if child.type in spec.functions or child.type in spec.containers:
                name = child.child_by_field_name("name")
                if name is None:
                    visit(child, cls)
                    continue
                kind = CLASS if child.type in spec.containers else (METHOD if cls >= 0 else FUNCTION)
                graph.definitions.append(Definition(
                    source[name.start_byte:name.end_byte].decode("utf-8", "replace"), kind, doc,
                    to_char(child.start_byte), to_char(child.end_byte), to_char(name.start_byte), cls))
                graph.reads.append(Counter())
                index = len(graph.definitions) - 1
                spans.paint(child.start_byte, child.end_byte, index)
                if kind == CLASS:
                    visit(child, index)
            else:
                visit(child, cls)

    visit(tree.root_node, -1)
    module_reads: Counter = Counter()
    for node in QueryCursor(_reads_query(language)).captures(tree.root_node).get("name", []):
        name = source[node.start_byte:node.end_byte].decode("utf-8", "replace")
        owner = int(spans.owner[node.start_byte])
        (graph.reads[owner] if owner >= 0 else module_reads)[name] += 1
    for index in range(first, len(graph.definitions)):
        graph.reads[index].pop(graph.definitions[index].name, None)
    return module_reads


def _char_mapper(text: str, source: bytes):
    """Byte offset -> character offset (identity for ASCII text)."""
    if len(source) == len(text):
        return int
    codepoints = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    widths = 1 + (codepoints >= 0x80).astype(np.int64) + (codepoints >= 0x800) + (codepoints >= 0x10000)
    char_starts = np.concatenate([[0], np.cumsum(widths)])
    return lambda position: int(np.searchsorted(char_starts, position, side="left"))
