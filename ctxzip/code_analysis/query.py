"""What a code query tells about the code it stands for: its function's name, whether it is a method,
its indentation, and the names in its signature, annotations and docstring."""

from __future__ import annotations

from dataclasses import dataclass, field

import regex

from ctxzip.code_analysis.chunk_scorers import identifiers

_DEF = regex.compile(r"^([ \t]*)(?:@[^\n]*\n[ \t]*)*(?:async[ \t]+)?(?:def|function|func|fn)[ \t]+([A-Za-z_]\w*)[ \t]*\(([^)]*)", regex.M)
_NAME = regex.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMBER = regex.compile(r"\b(?:self|cls|this)\.([A-Za-z_]\w*)")


@dataclass
class QueryInfo:
    text: str
    function: str | None = None  # the name the query's definition binds
    indent: int = 0  # columns before its `def`: > 0 means a method or a nested function
    is_method: bool = False  # first parameter self/cls (or indented under a class)
    names: set[str] = field(default_factory=set)  # every identifier it mentions
    members: set[str] = field(default_factory=set)  # `self.x` it mentions
    words: list[str] = field(default_factory=list)  # identifiers and their sub-words, for lexical scores

    @property
    def empty(self) -> bool:
        return not self.text.strip()


def analyse_query(query: str | None) -> QueryInfo:
    text = query or ""
    info = QueryInfo(text)
    match = _DEF.search(text)
    if match:
        info.indent = len(match.group(1).expandtabs(4))
        info.function = match.group(2)
        parameters = [p.strip().split(":")[0].split("=")[0].strip() for p in match.group(3).split(",")]
        info.is_method = bool(parameters) and parameters[0] in ("self", "cls")
    info.names = set(_NAME.findall(text))
    info.members = set(_MEMBER.findall(text))
    info.words = identifiers(text)
    return info
