"""Check a compressed JSON against its original: every kept value exact, every elision marked and counted.

    problems = elision_problems(original_text, compressed_text)   # [] when the compression is faithful

Arrays are walked side by side: an items marker ("... 37 of 60 items omitted here (indices 5-41) ...")
must stand exactly where its run was and count it; any other item must equal the original item at
that index. Objects must keep every key, in order; a value is either equal or, for a string, a
value marker with the original's length. Scalars compare by JSON type and value (1 is not 1.0 nor
true). Objects are read as lists of pairs, so duplicate keys are checked too.
"""

from __future__ import annotations

import json
from typing import Any

from ctxzip.structured.json_units import ITEMS_MARKER, VALUE_MARKER


class _Object(list):
    """A JSON object as its list of (key, value) pairs."""


def _load(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_Object)


def _same_scalar(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _check(original: Any, compressed: Any, path: str, problems: list[str]) -> None:
    if isinstance(original, _Object):
        if not isinstance(compressed, _Object):
            problems.append(f"{path}: object became {type(compressed).__name__}")
            return
        if [k for k, _ in original] != [k for k, _ in compressed]:
            problems.append(f"{path}: keys changed")
            return
        for (key, a), (_, b) in zip(original, compressed):
            where = f"{path}.{key}"
            if isinstance(a, str) and isinstance(b, str) and a != b:
                match = VALUE_MARKER.match(b)
                if match is None or int(match.group(1)) != len(a):
                    problems.append(f"{where}: string changed")
                continue
            _check(a, b, where, problems)
        return
    if isinstance(original, list):
        if not isinstance(compressed, list):
            problems.append(f"{path}: array became {type(compressed).__name__}")
            return
        at = 0
        for item in compressed:
            match = ITEMS_MARKER.match(item) if isinstance(item, str) else None
            if match is not None and not (at < len(original) and original[at] == item):
                omitted, total, first = int(match.group(1)), int(match.group(2)), int(match.group(3))
                last = int(match.group(4)) if match.group(4) is not None else first
                if total != len(original) or first != at or last - first + 1 != omitted or last >= total:
                    problems.append(f"{path}[{at}]: marker says {omitted} of {total} at {first}-{last}")
                    return
                at += omitted
                continue
            if at >= len(original):
                problems.append(f"{path}: more items than the original")
                return
            _check(original[at], item, f"{path}[{at}]", problems)
            at += 1
        if at != len(original):
            problems.append(f"{path}: {len(original) - at} items missing without a marker")
        return
    if not _same_scalar(original, compressed):
        problems.append(f"{path}: value changed")


def elision_problems(original_text: str, compressed_text: str) -> list[str]:
    """What is wrong with `compressed_text` as a marked elision of `original_text` ([] = nothing)."""
    try:
        compressed = _load(compressed_text)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    problems: list[str] = []
    _check(_load(original_text), compressed, "$", problems)
    return problems


def kept_values(original_text: str, compressed_text: str) -> tuple[int, int]:
    """(scalar values of the original that arrive unchanged, scalar values in the original)."""
    original, compressed = _load(original_text), _load(compressed_text)
    total = _count(original)
    return _kept(original, compressed), total


def _count(value: Any) -> int:
    if isinstance(value, _Object):
        return sum(_count(v) for _, v in value)
    if isinstance(value, list):
        return sum(_count(v) for v in value)
    return 1


def _kept(original: Any, compressed: Any) -> int:
    if isinstance(original, _Object) and isinstance(compressed, _Object):
        return sum(_kept(a, b) for (_, a), (_, b) in zip(original, compressed))
    if isinstance(original, list) and isinstance(compressed, list):
        kept, at = 0, 0
        for item in compressed:
            match = ITEMS_MARKER.match(item) if isinstance(item, str) else None
            if match is not None and not (at < len(original) and original[at] == item):
                at += int(match.group(1))
                continue
            if at < len(original):
                kept += _kept(original[at], item)
            at += 1
        return kept
    return int(_same_scalar(original, compressed))
