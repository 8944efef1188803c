"""JSON cut into units that can be dropped without breaking the JSON.

`parse_json_units(text)` walks a JSON text once, with character positions, and cuts it into spans
that cover it end to end:

- an array item is one unit (a scalar) or a frame (a container: its opening bracket, with the
  separator before it, and its closing bracket) whose children are units of their own;
- object members are never dropped (keys and schema stay): a member's key and a short scalar value
  join the object's frame; a long string value is a unit of its own that may give way to a marker;
  a member whose value is a container joins its key and brackets to the frame too;
- a container shorter than `SMALL_CONTAINER_CHARS` is one piece (a marker would cost more).

A *skeleton* is what must be kept together: an array item's frame with all its keys, short values
and nested brackets (one `group`). Every unit depends on (`parent`) the opening unit of the
container it sits in. Whatever a keep-mask drops within a kept container is replaced in place by a
marker, so any mask that honours groups and parents renders valid JSON in which every kept value is
byte-identical to the original:

    "... 37 of 60 items omitted here (indices 5-41) ..."      an elided run of array items
    "... value omitted: 5123 characters ..."                   an elided long string value

The walk uses the standard library's own scanners (`json.decoder.scanstring` for strings, the
`NUMBER_RE` of `json.scanner` for numbers, `raw_decode` for containers nested deeper than
`max_depth`), so it agrees with `json.loads` on what a token is and where it ends; the text is
validated with `json.loads` first. No third-party parser gives character offsets and the stdlib's
C scanners do the per-character work.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from dataclasses import dataclass, field

import numpy as np

from ctxzip.errors import InvalidInputError

FRAME, ITEM = 0, 1  # unit roles: part of a skeleton / a droppable array item or long value
LONG_VALUE_CHARS = 160  # string member values longer than this may be elided
MAX_DEPTH = 48  # containers nested deeper are kept or dropped whole (one unit)
# Containers this short are kept or dropped whole: a marker inside them would cost more than they do.
SMALL_CONTAINER_CHARS = 120

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def items_marker(omitted: int, total: int, first: int, last: int) -> str:
    where = f"index {first}" if first == last else f"indices {first}-{last}"
    noun = "item" if total == 1 else "items"
    return f"... {omitted} of {total} {noun} omitted here ({where}) ..."


def value_marker(chars: int) -> str:
    return f"... value omitted: {chars} characters ..."


ITEMS_MARKER = re.compile(r"^\.\.\. (\d+) of (\d+) items? omitted here \(ind(?:ex|ices) (\d+)(?:-(\d+))?\) \.\.\.$")
VALUE_MARKER = re.compile(r"^\.\.\. value omitted: (\d+) characters \.\.\.$")


@dataclass
class Child:
    """One array item or object member of a container."""

    unit: int  # its first unit: the leaf unit, or the opening frame unit of a container
    start: int  # where its span starts (separator before it included)
    value_start: int  # where its value starts
    value_end: int
    key: str | None  # object members only
    node: int | None  # container node id when the value is a container that was walked
    droppable: bool  # False: part of its parent's skeleton (object members)


@dataclass
class Container:
    kind: str  # "array" | "object"
    open_unit: int
    close_unit: int
    parent: int | None  # enclosing container node
    children: list[Child] = field(default_factory=list)


@dataclass
class JsonUnits:
    """Units covering `text` end to end, plus the container tree the placeholders need."""

    text: str
    start: np.ndarray
    end: np.ndarray
    role: np.ndarray  # FRAME or ITEM
    group: np.ndarray  # skeleton id; -1 for a unit that stands alone
    parent: np.ndarray  # unit this one depends on; -1 for the root skeleton
    protected: np.ndarray  # the root skeleton
    containers: list[Container]

    def __len__(self) -> int:
        return len(self.start)

    def present(self, child: Child, mask: np.ndarray) -> bool:
        return bool(mask[child.unit])

    def placeholders(self, mask: np.ndarray) -> list[tuple[int, str]]:
        """(position in the original text, text to insert there) for every elided run under `mask`.

        `mask` must keep groups whole and never keep a unit whose parent is dropped (`consistent`).
        """
        inserts: list[tuple[int, str]] = []
        for container in self.containers:
            if not mask[container.open_unit]:
                continue
            children = container.children
            if container.kind == "object":
                for child in children:
                    if child.droppable and not mask[child.unit]:
                        chars = len(json.loads(self.text[child.value_start:child.value_end]))
                        inserts.append((child.value_start, json.dumps(value_marker(chars))))
                continue
            n, i = len(children), 0
            while i < n:
                if mask[children[i].unit]:
                    i += 1
                    continue
                j = i
                while j + 1 < n and not mask[children[j + 1].unit]:
                    j += 1
                first = children[i]
                separator = self.text[first.start:first.value_start]
                marker = json.dumps(items_marker(j - i + 1, n, i, j))
                inserts.append((first.start, separator + marker))
                i = j + 1
        inserts.sort(key=lambda insert: insert[0])
        return inserts

    def consistent(self, mask: np.ndarray) -> np.ndarray:
        """The largest mask within `mask` that honours parents and keeps groups whole (protected kept)."""
        mask = np.asarray(mask, dtype=bool) | self.protected
        for _ in range(len(mask) + 1):
            before = mask.copy()
            groups = self.group[self.group >= 0]
            if len(groups):
                partial = np.zeros(int(groups.max()) + 1, dtype=bool)
                np.logical_or.at(partial, groups, ~mask[self.group >= 0])  # a group missing any unit goes whole
                mask[(self.group >= 0) & partial[np.maximum(self.group, 0)]] = False
                mask |= self.protected
            has_parent = self.parent >= 0
            mask[has_parent] &= mask[self.parent[has_parent]]  # units are in text order: parents come first
            if np.array_equal(mask, before):
                return mask
        return mask

    def render(self, mask: np.ndarray) -> str:
        """The kept spans with the markers in place (what the shared solver's rebuild produces)."""
        mask = np.asarray(mask, dtype=bool)
        inserts = self.placeholders(mask)
        pieces, k = [], 0
        for u in range(len(self)):
            s = int(self.start[u])
            while k < len(inserts) and inserts[k][0] <= s:
                pieces.append(inserts[k][1])
                k += 1
            if mask[u]:
                pieces.append(self.text[s:int(self.end[u])])
        pieces.extend(text for _, text in inserts[k:])
        return "".join(pieces)

    def unit_texts(self) -> list[str]:
        return [self.text[s:e] for s, e in zip(self.start.tolist(), self.end.tolist())]

    def subtree_text(self, child: Child) -> str:
        return self.text[child.value_start:child.value_end]


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def is_json(text: str) -> bool:
    """Strict JSON (no NaN/Infinity) with a container at the top: what the `json` method cuts."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, (list, dict))


class _Builder:
    def __init__(self, text: str, max_depth: int, small_chars: int) -> None:
        self.text = text
        self.max_depth = max_depth
        self.small_chars = small_chars
        self.start: list[int] = []
        self.end: list[int] = []
        self.role: list[int] = []
        self.group: list[int] = []
        self.parent: list[int] = []
        self.containers: list[Container] = []
        self.groups = 0

    def unit(self, start: int, end: int, role: int, group: int, parent: int) -> int:
        self.start.append(start)
        self.end.append(end)
        self.role.append(role)
        self.group.append(group)
        self.parent.append(parent)
        return len(self.start) - 1

    def skip(self, i: int) -> int:
        return _WHITESPACE.match(self.text, i).end()

    def scalar_end(self, i: int) -> int:
        text = self.text
        c = text[i]
        if c == '"':
            return json.decoder.scanstring(text, i + 1, True)[1]
        for literal in ("true", "false", "null"):
            if text.startswith(literal, i):
                return i + len(literal)
        match = json.scanner.NUMBER_RE.match(text, i)
        if match is None:
            raise InvalidInputError(f"not JSON at character {i}")
        return match.end()

    def container(self, span_start: int, i: int, group: int, parent_unit: int, parent_node: int | None,
                  depth: int) -> tuple[int, int]:
        """Walk the container whose bracket is at `i`; its opening unit starts at `span_start`.
        Returns (node id, end of the container)."""
        text = self.text
        kind = "array" if text[i] == "[" else "object"
        close_char = "]" if kind == "array" else "}"
        open_unit = self.unit(span_start, i + 1, FRAME, group, parent_unit)
        node = len(self.containers)
        self.containers.append(Container(kind, open_unit, -1, parent_node))
        children = self.containers[node].children
        at = i + 1  # where the closing unit starts: after the last value (or the opening bracket)
        j = self.skip(at)
        if text[j] != close_char:
            child_start, cursor = at, at
            while True:
                value_start = self.skip(cursor)
                key = None
                if kind == "object":
                    key, key_end = json.decoder.scanstring(text, value_start + 1, True)
                    colon = self.skip(key_end)
                    value_start = self.skip(colon + 1)
                child, value_end = self.value(child_start, value_start, key, kind, group, open_unit, node, depth)
                children.append(child)
                j = self.skip(value_end)
                if text[j] == ",":  # the separator belongs to the next child's span
                    child_start, cursor = value_end, j + 1
                    continue
                at = value_end
                break
        close_end = j + 1  # text[j] is the closing bracket
        close = self.unit(at, close_end, FRAME, group, open_unit)
        self.containers[node].close_unit = close
        return node, close_end

    def _container_end(self, i: int, known: int | None) -> int:
        return known if known is not None else _DECODER.raw_decode(self.text, i)[1]

    def small_container_end(self, i: int) -> int | None:
        """End of the container at `i` if it closes within `small_chars` (decoding only that window)."""
        if self.small_chars <= 0:
            return None
        try:
            return i + _DECODER.raw_decode(self.text[i:i + self.small_chars])[1]
        except ValueError:
            return None

    def value(self, child_start, value_start, key, kind, group, open_unit, node, depth) -> tuple[Child, int]:
        text = self.text
        c = text[value_start]
        small_end = self.small_container_end(value_start) if c in "[{" else None
        nested = c in "[{" and depth + 1 < self.max_depth and small_end is None
        if kind == "object":
            if nested:  # the key and the brackets join this skeleton
                child_node, value_end = self.container(child_start, value_start, group, open_unit, node, depth + 1)
                unit = self.containers[child_node].open_unit
                return Child(unit, child_start, value_start, value_end, key, child_node, False), value_end
            value_end = self._container_end(value_start, small_end) if c in "[{" else self.scalar_end(value_start)
            if c == '"' and value_end - value_start > LONG_VALUE_CHARS:
                self.unit(child_start, value_start, FRAME, group, open_unit)  # the key stays
                unit = self.unit(value_start, value_end, ITEM, -1, open_unit)
                return Child(unit, child_start, value_start, value_end, key, None, True), value_end
            unit = self.unit(child_start, value_end, FRAME, group, open_unit)
            return Child(unit, child_start, value_start, value_end, key, None, False), value_end
        if nested:  # an array item that is a container: a skeleton of its own
            self.groups += 1
            child_node, value_end = self.container(child_start, value_start, self.groups - 1, open_unit, node, depth + 1)
            unit = self.containers[child_node].open_unit
            return Child(unit, child_start, value_start, value_end, None, child_node, True), value_end
        value_end = self._container_end(value_start, small_end) if c in "[{" else self.scalar_end(value_start)
        unit = self.unit(child_start, value_end, ITEM, -1, open_unit)
        return Child(unit, child_start, value_start, value_end, None, None, True), value_end


def parse_json_units(text: str, max_depth: int = MAX_DEPTH, small_chars: int = SMALL_CONTAINER_CHARS) -> JsonUnits:
    """Cut a JSON text (an array or object at the top) into units; raises InvalidInputError otherwise.
    Containers nested deeper than `max_depth` or shorter than `small_chars` are one piece."""
    if not is_json(text):
        raise InvalidInputError("the text is not a JSON array or object")
    builder = _Builder(text, max_depth, small_chars)
    root_start = builder.skip(0)
    builder.groups = 1
    _, end = builder.container(0, root_start, 0, -1, None, 0)
    # Whitespace after the top-level value belongs to the root's closing unit.
    root_close = builder.containers[0].close_unit
    builder.end[root_close] = len(text)
    if builder.skip(end) != len(text):
        raise InvalidInputError("text after the JSON value")
    group = np.asarray(builder.group, dtype=np.int64)
    return JsonUnits(
        text=text,
        start=np.asarray(builder.start, dtype=np.int64),
        end=np.asarray(builder.end, dtype=np.int64),
        role=np.asarray(builder.role, dtype=np.int8),
        group=group,
        parent=np.asarray(builder.parent, dtype=np.int64),
        protected=group == 0,
        containers=builder.containers,
    )
