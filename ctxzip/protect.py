"""Protected spans: parts of the input a compressor must keep whole, whatever their score.

Everything is off by default: forcing every number or URL into a sentence-level selection can make
a budget impossible, so users opt in to what matters for their prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import regex

from ctxzip.errors import InvalidInputError, InvalidOptionError

NUMBER = r"(?<![\p{L}\p{N}_])[-+]?\p{N}+(?:[.,:/]\p{N}+)*%?"
URL = r"\b(?:https?|ftp)://[^\s<>\"'`]+|\bwww\.[^\s<>\"'`]+"
EMAIL = r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"
CODE = r"(?ms)^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$|(?<!`)`[^`\n]+`(?!`)"


@dataclass(frozen=True)
class Protection:
    """What to keep whole: built-in kinds, user regexes and literal force tokens."""

    numbers: bool = False
    urls: bool = False
    emails: bool = False
    code: bool = False
    patterns: tuple[str, ...] = ()
    force_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for pattern in self.patterns:
            try:
                regex.compile(pattern)
            except regex.error as exc:
                raise InvalidInputError(f"bad protect pattern {pattern!r}: {exc}") from None

    @property
    def enabled(self) -> bool:
        return bool(self.numbers or self.urls or self.emails or self.code or self.patterns or self.force_tokens)

    def _compiled(self) -> regex.Pattern | None:
        parts = [p for flag, p in ((self.numbers, NUMBER), (self.urls, URL), (self.emails, EMAIL), (self.code, CODE)) if flag]
        parts += [f"(?:{p})" for p in self.patterns]
        parts += [regex.escape(t) for t in self.force_tokens if t]
        return regex.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def find(self, text: str) -> list[tuple[int, int]]:
        """Sorted, merged (start, end) character spans to protect in `text`."""
        pattern = self._compiled()
        if pattern is None:
            return []
        spans = sorted((m.start(), m.end()) for m in pattern.finditer(text, overlapped=True) if m.end() > m.start())
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged


def overlaps_protected(starts: np.ndarray, ends: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """For units [starts, ends) of one document, whether each overlaps any protected span."""
    if not spans or not len(starts):
        return np.zeros(len(starts), dtype=bool)
    span_starts = np.array([s for s, _ in spans])
    span_ends = np.array([e for _, e in spans])
    nxt = np.searchsorted(span_ends, starts, side="right")  # first span ending after the unit starts
    inside = nxt < len(spans)
    result = np.zeros(len(starts), dtype=bool)
    result[inside] = span_starts[nxt[inside]] < ends[inside]
    return result


def as_protection(value: Any) -> Protection:
    """The `protection` option as a Protection: one already, or its fields as a mapping (JSON, CLI)."""
    if isinstance(value, Protection):
        return value
    names = {f.name for f in fields(Protection)}
    if isinstance(value, dict):
        unknown = sorted(set(map(str, value)) - names)
        if unknown:
            raise InvalidOptionError(f"protection has no field {', '.join(map(repr, unknown))}; its fields: {', '.join(sorted(names))}")
        value = {k: (v,) if k in ("patterns", "force_tokens") and isinstance(v, str)
                 else tuple(v) if isinstance(v, list) else v for k, v in value.items()}
        try:
            return Protection(**value)
        except TypeError as exc:
            raise InvalidOptionError(f"bad protection: {exc}") from None
    raise InvalidOptionError(f"protection must be a mapping of {', '.join(sorted(names))}, got {type(value).__name__}")

