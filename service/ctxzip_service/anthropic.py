"""The Anthropic Messages API at the sidecar's edge: the request's texts for the chat policy, the
compressed texts back into the request, and errors in Anthropic's own shape.

Texts of a Messages request, each a `TextPart` (message -1 is the top-level `system`):
- `system` as a string (key "-1") or text blocks ("-1.j");
- a message's string content ("i") or text blocks ("i.j"), role user or assistant;
- a `tool_result` block's string content ("i.j") or its text blocks ("i.j.k"), role "tool", with the
  name of the tool whose `tool_use` it answers (for the per-tool policy).
Images, documents, `tool_use` inputs and everything else go upstream as they came.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ctxzip.chat import MARK, TextPart
from ctxzip_service.schemas import PolicyIn

SYSTEM = -1

# Anthropic error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
               422: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


class Block(BaseModel):
    """A content block; text blocks may carry the `ctxzip_compress` mark."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1, max_length=64)
    text: str | None = None
    ctxzip_compress: bool | None = None
    content: str | list["Block"] | None = None  # tool_result


class AnthropicMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[Block]


class MessagesRequest(BaseModel):
    """The fields the sidecar reads; every other field goes upstream untouched."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    system: str | list[Block] | None = None
    stream: bool | None = None
    ctxzip: PolicyIn | None = None


def _tool_names(messages: list[dict]) -> dict[str, str]:
    names = {}
    for message in messages:
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                    names[block["id"]] = str(block.get("name", ""))
    return names


def _text_blocks(blocks: list, message: int, role: str, tool: str | None, outer: int | None = None) -> list[TextPart]:
    parts = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            mark = block.get(MARK)
            if outer is None:
                parts.append(TextPart(message, j, role, block["text"], mark, tool=tool))
            else:
                parts.append(TextPart(message, outer, role, block["text"], mark, sub=j, tool=tool))
    return parts


def message_parts(body: dict) -> list[TextPart]:
    """Every text of a Messages request, in order: system, then each message's texts."""
    parts: list[TextPart] = []
    system = body.get("system")
    if isinstance(system, str):
        parts.append(TextPart(SYSTEM, None, "system", system))
    elif isinstance(system, list):
        parts += _text_blocks(system, SYSTEM, "system", None)
    messages = body["messages"]
    names = _tool_names(messages)
    for i, message in enumerate(messages):
        content, role = message.get("content"), message.get("role")
        if isinstance(content, str):
            parts.append(TextPart(i, None, role, content))
            continue
        for j, block in enumerate(content or []):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and isinstance(block.get("text"), str):
                parts.append(TextPart(i, j, role, block["text"], block.get(MARK)))
            elif block.get("type") == "tool_result":
                tool = names.get(block.get("tool_use_id", ""))
                inner = block.get("content")
                if isinstance(inner, str):
                    parts.append(TextPart(i, j, "tool", inner, block.get(MARK), tool=tool))
                elif isinstance(inner, list):
                    parts += _text_blocks(inner, i, "tool", tool, outer=j)
    return parts


def _replace_blocks(blocks: list, prefix: str, replacements: dict[str, str]) -> list:
    out = []
    for j, block in enumerate(blocks):
        if isinstance(block, dict):
            key = f"{prefix}.{j}"
            block = {k: v for k, v in block.items() if k != MARK}
            if key in replacements and isinstance(block.get("text"), str):
                block["text"] = replacements[key]
            elif block.get("type") == "tool_result":
                inner = block.get("content")
                if isinstance(inner, str) and key in replacements:
                    block["content"] = replacements[key]
                elif isinstance(inner, list):
                    block["content"] = _replace_blocks(inner, key, replacements)
        out.append(block)
    return out


def rewrite_request(body: dict, replacements: dict[str, str]) -> dict:
    """A copy of `body` with texts replaced (by `TextPart.key`) and marks removed; the `ctxzip` field goes."""
    out = {k: v for k, v in body.items() if k != "ctxzip"}
    system = body.get("system")
    if isinstance(system, str) and str(SYSTEM) in replacements:
        out["system"] = replacements[str(SYSTEM)]
    elif isinstance(system, list):
        out["system"] = _replace_blocks(system, str(SYSTEM), replacements)
    messages = []
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        if isinstance(content, str):
            messages.append({**message, "content": replacements[str(i)]} if str(i) in replacements else message)
        elif isinstance(content, list):
            messages.append({**message, "content": _replace_blocks(content, str(i), replacements)})
        else:
            messages.append(message)
    out["messages"] = messages
    return out
