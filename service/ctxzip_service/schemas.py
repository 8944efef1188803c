"""Request and response models at the HTTP boundary (pydantic v2).

Chat messages allow extra fields (name, tool_calls, ...) because the sidecar forwards what it does
not understand; the sidecar's own knobs are strict (`extra="forbid"`) so typos fail loudly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ctxzip.chat import MARK  # key on a content part: true = compress it, false = never


class BudgetIn(BaseModel):
    """Exactly one of `tokens` (hard cap) or `ratio` (share of the input's tokens)."""

    model_config = ConfigDict(extra="forbid")

    tokens: int | None = Field(None, ge=1, le=10_000_000)
    ratio: float | None = Field(None, gt=0, le=1)
    tokenizer: str | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _exactly_one(self) -> "BudgetIn":
        if (self.tokens is None) == (self.ratio is None):
            raise ValueError("give exactly one of budget.tokens or budget.ratio")
        return self


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    id: str | None = Field(None, max_length=512)
    metadata: dict[str, Any] = {}


class ContentPart(BaseModel):
    """An OpenAI content part; text parts may carry the `ctxzip_compress` mark."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None
    ctxzip_compress: bool | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(min_length=1, max_length=64)
    content: str | list[ContentPart] | None = None


class PolicyIn(BaseModel):
    """Per-request overrides of the chat policy (the `ctxzip` field of a chat request)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    method: str | None = Field(None, min_length=1, max_length=64)
    budget: BudgetIn | None = None
    options: dict[str, Any] = {}
    roles: list[str] | None = None
    min_tokens: int | None = Field(None, ge=0)
    compress_last_user: bool | None = None
    split_user: bool | None = None  # split an unmarked user message into context and question
    tools: dict[str, Literal["compress", "never"]] | None = None  # per-tool policy by tool name
    default_tool: Literal["compress", "never"] | None = None  # for tools not named in `tools`
    keep_last_turns: int | None = Field(None, ge=0, le=10_000)  # under a token budget


class ChatCompletionRequest(BaseModel):
    """The fields the sidecar reads; every other field goes upstream untouched."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    ctxzip: PolicyIn | None = None


class CompressRequest(BaseModel):
    """Give exactly one of `text`, `documents` or `messages`."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    documents: list[DocumentIn] | None = Field(None, min_length=1)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    query: str | None = None
    budget: BudgetIn
    method: str | None = Field(None, min_length=1, max_length=64)
    options: dict[str, Any] = {}
    # For `messages`: which parts may be compressed (defaults from the server settings).
    policy: PolicyIn | None = None

    @model_validator(mode="after")
    def _one_input(self) -> "CompressRequest":
        given = [name for name in ("text", "documents", "messages") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, documents or messages")
        return self


class SpanOut(BaseModel):
    doc_id: str
    start: int
    end: int


class DocumentOut(BaseModel):
    text: str
    id: str | None
    metadata: dict[str, Any]


class CompressResponse(BaseModel):
    """`CompressionResult` as JSON, plus the compressed messages when messages came in."""

    text: str
    documents: list[DocumentOut]
    kept: list[SpanOut]
    original_tokens: int
    compressed_tokens: int
    ratio: float
    method: str
    model: str | None = None
    budget_tokens: int | None = None
    tokenizer: str | None = None
    timings: dict[str, float] = {}
    info: dict[str, Any] = {}
    cached: bool = False
    messages: list[dict[str, Any]] | None = None


class ErrorBody(BaseModel):
    message: str
    type: str
    code: str


class ErrorResponse(BaseModel):
    """OpenAI-style error envelope, so OpenAI clients raise their usual exceptions."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    methods: list[str] = []
    loaded: list[str] = []
    detail: str | None = None
