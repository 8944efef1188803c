"""The chat policy (`ctxzip.chat`) applied to OpenAI-shaped requests: texts out of the messages,
compressed texts back in, the request's overrides of the server's defaults.

Marks (`"ctxzip_compress": true/false` on a content part) are removed before the request goes upstream.
"""

from __future__ import annotations

from typing import Sequence

from ctxzip.chat import ChatPolicy, TextPart
from ctxzip_service.schemas import MARK, ChatMessage


def _tool_names(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """tool_call_id -> the name of the function the assistant called (for the per-tool policy)."""
    names = {}
    for message in messages:
        for call in (message.model_extra or {}).get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("id"), str):
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                names[call["id"]] = str(function.get("name", ""))
    return names


def message_parts(messages: Sequence[ChatMessage]) -> list[TextPart]:
    """Every text of every message (string content, or the text parts of a list content); a tool
    result carries the name of the tool that produced it (legacy `function` messages their `name`)."""
    names = _tool_names(messages)
    parts = []
    for i, message in enumerate(messages):
        extra = message.model_extra or {}
        tool = names.get(extra.get("tool_call_id")) if message.role == "tool" else extra.get("name")
        tool = tool if isinstance(tool, str) else None
        if isinstance(message.content, str):
            parts.append(TextPart(i, None, message.role, message.content, tool=tool))
        elif isinstance(message.content, list):
            parts.extend(TextPart(i, j, message.role, part.text, part.ctxzip_compress, tool=tool)
                         for j, part in enumerate(message.content) if part.text is not None)
    return parts


def rewrite_messages(messages: list[dict], replacements: dict[str, str]) -> list[dict]:
    """A copy of `messages` with texts replaced (by `TextPart.key`) and marks removed.

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


def resolve_policy(roles: Sequence[str], min_tokens: int, compress_last_user: bool, override=None) -> ChatPolicy:
    """Server defaults, each replaced by the request's `ctxzip` field where it sets one."""
    if override is not None:
        roles = override.roles if override.roles is not None else roles
        min_tokens = override.min_tokens if override.min_tokens is not None else min_tokens
        if override.compress_last_user is not None:
            compress_last_user = override.compress_last_user
    return ChatPolicy(frozenset(roles), min_tokens, compress_last_user)
