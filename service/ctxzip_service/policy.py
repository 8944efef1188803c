"""Which parts of a chat request may be compressed.

Default policy: long `user`/`tool` contents (at least `min_tokens` tokens) and content parts marked
`"ctxzip_compress": true` (retrieved context, wherever it sits). Never the system/developer prompt
(unless its role is named in `roles`) and never the final user message, the question (unless
`compress_last_user`); a part marked `"ctxzip_compress": false` is never touched. The marks are
removed before the request goes upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ctxzip.budget import TokenCounter
from ctxzip_service.schemas import MARK, ChatMessage, ContentPart

@dataclass(frozen=True)
class Policy:
    roles: frozenset[str]
    min_tokens: int
    compress_last_user: bool


@dataclass(frozen=True)
class Segment:
    """One compressible text: message `message`, content part `part` (None for string content)."""

    message: int
    part: int | None
    text: str
    tokens: int

    @property
    def id(self) -> str:
        return f"{self.message}" if self.part is None else f"{self.message}.{self.part}"


@dataclass
class Plan:
    segments: list[Segment]
    query: str | None
    original_tokens: int  # all text content of the request, in the budget's tokenizer
    marked: bool  # some part carried a mark (so the body must be rewritten even if nothing shrinks)


def _texts(content: str | list[ContentPart] | None) -> list[tuple[int | None, str, bool | None]]:
    """(part index, text, mark) of each text in a message content (string or list of parts)."""
    if isinstance(content, str):
        return [(None, content, None)]
    if isinstance(content, list):
        return [(j, part.text, part.ctxzip_compress) for j, part in enumerate(content) if part.text is not None]
    return []


def plan_compression(messages: Sequence[ChatMessage], policy: Policy, counter: TokenCounter) -> Plan:
    """Find the compressible segments, the query (the final user message) and the request's tokens."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    segments: list[Segment] = []
    query_parts: list[str] = []
    total = 0
    marked = False
    for i, message in enumerate(messages):
        role_ok = message.role in policy.roles
        position_ok = i != last_user or policy.compress_last_user
        for j, text, mark in _texts(message.content):
            tokens = counter.count(text)
            total += tokens
            marked = marked or mark is not None
            if mark is True:
                segments.append(Segment(i, j, text, tokens))
            elif mark is None and role_ok and position_ok and tokens >= policy.min_tokens and tokens > 0:
                segments.append(Segment(i, j, text, tokens))
            elif i == last_user:
                query_parts.append(text)
    query = "\n".join(query_parts).strip() or None
    return Plan(segments, query, total, marked)


def rewrite_messages(messages: list[dict], replacements: dict[str, str]) -> list[dict]:
    """A copy of `messages` with segment texts replaced (by segment id) and marks removed.

    Only touched messages are copied; the others are shared with the input.
    """
    out = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, str):
            key = str(i)
            out.append({**message, "content": replacements[key]} if key in replacements else message)
        elif isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if isinstance(part, dict):
                    part = {k: v for k, v in part.items() if k != MARK}
                    key = f"{i}.{j}"
                    if key in replacements:
                        part["text"] = replacements[key]
                parts.append(part)
            out.append({**message, "content": parts})
        else:
            out.append(message)
    return out


def resolve_policy(roles: Sequence[str], min_tokens: int, compress_last_user: bool, override=None) -> Policy:
    """Server defaults, each replaced by the request's `ctxzip` field where it sets one."""
    if override is not None:
        roles = override.roles if override.roles is not None else roles
        min_tokens = override.min_tokens if override.min_tokens is not None else min_tokens
        if override.compress_last_user is not None:
            compress_last_user = override.compress_last_user
    return Policy(frozenset(roles), min_tokens, compress_last_user)
