"""Which tree-sitter grammar parses a document, and what its syntax looks like to the chunker.

Grammars come from the per-language wheels (tree-sitter-python, -javascript, ...), which carry
compiled parsers; tree-sitter-language-pack 1.x downloads grammars at run time and fails offline.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import PurePath

from ctxzip.document import Document
from ctxzip.errors import InvalidInputError


@dataclass(frozen=True)
class LanguageSpec:
    """Node types the chunker cares about in one grammar."""

    name: str
    module: str  # the wheel's import name
    attr: str  # function in it returning the language pointer
    functions: frozenset[str]  # nodes with a `body` field whose statements may be elided
    containers: frozenset[str]  # nodes with a `body` field holding members (classes, impls, namespaces)
    imports: frozenset[str]
    wrappers: frozenset[str]  # nodes that wrap a single definition (decorators, export, template, const f = ...)
    marker: str  # what an elided body becomes, valid wherever a statement or member may stand

    @property
    def braces(self) -> bool:
        return self.name != "python"


_C_LIKE_MARKER = "/* ... */"
_JS_FUNCTIONS = frozenset({
    "function_declaration", "generator_function_declaration", "method_definition", "function_expression",
    "arrow_function", "function", "generator_function",
})
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "variable_declarator"})

SPECS: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec(
            "python", "tree_sitter_python", "language",
            frozenset({"function_definition"}), frozenset({"class_definition"}),
            frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
            frozenset({"decorated_definition"}), "...",
        ),
        LanguageSpec(
            "javascript", "tree_sitter_javascript", "language", _JS_FUNCTIONS,
            frozenset({"class_declaration", "class"}), frozenset({"import_statement"}), _JS_WRAPPERS, _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "typescript", "tree_sitter_typescript", "language_typescript", _JS_FUNCTIONS,
            frozenset({"class_declaration", "abstract_class_declaration", "class"}), frozenset({"import_statement"}),
            _JS_WRAPPERS, _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "tsx", "tree_sitter_typescript", "language_tsx", _JS_FUNCTIONS,
            frozenset({"class_declaration", "abstract_class_declaration", "class"}), frozenset({"import_statement"}),
            _JS_WRAPPERS, _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "java", "tree_sitter_java", "language",
            frozenset({"method_declaration", "constructor_declaration"}),
            frozenset({"class_declaration", "interface_declaration"}),
            frozenset({"import_declaration", "package_declaration"}), frozenset(), _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "go", "tree_sitter_go", "language",
            frozenset({"function_declaration", "method_declaration"}), frozenset(),
            frozenset({"import_declaration", "package_clause"}), frozenset(), _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "rust", "tree_sitter_rust", "language",
            frozenset({"function_item"}), frozenset({"impl_item", "trait_item", "mod_item"}),
            frozenset({"use_declaration", "extern_crate_declaration"}), frozenset(), _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "c", "tree_sitter_c", "language",
            frozenset({"function_definition"}), frozenset(), frozenset({"preproc_include"}), frozenset(),
            _C_LIKE_MARKER,
        ),
        LanguageSpec(
            "cpp", "tree_sitter_cpp", "language",
            frozenset({"function_definition"}),
            frozenset({"class_specifier", "struct_specifier", "namespace_definition"}),
            frozenset({"preproc_include", "using_declaration"}), frozenset({"template_declaration"}),
            _C_LIKE_MARKER,
        ),
    )
}

EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".java": "java", ".go": "go", ".rs": "rust",
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hpp": "cpp", ".hh": "cpp", ".hxx": "cpp",
}
_ALIASES = {"py": "python", "js": "javascript", "ts": "typescript", "c++": "cpp", "golang": "go", "rs": "rust"}

# Tried in this order when a document names no path or language; the first clean parse that
# looks like code wins.
SNIFF_ORDER = ("python", "go", "java", "rust", "javascript", "typescript", "c", "cpp")

# An expression statement made only of these is data or a word, not code: JSON parses as a Python
# dictionary, one word as a Python name, a run of emoji as a JavaScript identifier.
_DATA_NODES = frozenset({
    "identifier", "dictionary", "list", "tuple", "set", "pair", "string", "concatenated_string", "string_start",
    "string_content", "string_end", "escape_sequence", "integer", "float", "true", "false", "none", "null",
    "object", "array", "number", "string_fragment", "template_string", "parenthesized_expression",
    "unary_operator", "unary_expression", "comment", "subscript", "subscript_expression", "sequence_expression",
    "expression_list",
})
_QUIET_NODES = frozenset({"comment", "line_comment", "block_comment"})


def normalise_language(name: str) -> str:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in SPECS:
        raise InvalidInputError(f"unknown code language {name!r}; known: {', '.join(sorted(SPECS))}")
    return key


def language_for_path(path: str) -> str | None:
    """The language of a file name by its extension, or None when no grammar covers it."""
    return EXTENSIONS.get(PurePath(path).suffix.lower())


def declared_language(document: Document) -> tuple[str | None, bool]:
    """(language, whether the document named one) from metadata["language"], metadata["path"] or its id."""
    language = document.metadata.get("language")
    if language:
        return normalise_language(str(language)), True
    for path in (document.metadata.get("path"), document.metadata.get("source"), document.id):
        if isinstance(path, str) and PurePath(path).suffix:
            return language_for_path(path), True
    return None, False


def looks_like_code(root) -> bool:
    """Whether a clean parse holds code: some top-level node other than comments and expression
    statements of literals or bare words."""
    for child in root.named_children:
        if child.type in _QUIET_NODES:
            continue
        if child.type != "expression_statement" or not _only_data(child):
            return True
    return False


def _only_data(node) -> bool:
    stack = list(node.named_children)
    while stack:
        current = stack.pop()
        if current.type not in _DATA_NODES:
            return False
        stack.extend(current.named_children)
    return True


def sniff_language(text: str) -> str | None:
    """The first grammar that parses `text` cleanly into something that looks like code, or None
    (not code: data, prose, emoji), in which case the compressor works on lines."""
    source = text.encode("utf-8", "surrogatepass")
    for language in SNIFF_ORDER:
        parser = get_parser(language)
        if parser is None:
            continue
        root = parser.parse(source).root_node
        if not root.has_error and looks_like_code(root):
            return language
    return None


@functools.lru_cache(maxsize=None)
def get_parser(language: str):
    """A tree-sitter parser for `language`, built once; None when its wheel is not installed."""
    from tree_sitter import Language, Parser

    spec = SPECS[language]
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        return None
    return Parser(Language(getattr(module, spec.attr)()))
