"""Sidecar settings: environment variables (prefix CTXZIP_) and `ctxzip serve` flags.

Everything that changes behaviour lives here so the app factory takes one object (dependency injection
in tests: build a `ServiceSettings(...)` and pass it to `create_app`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CTXZIP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=0, le=65535)
    # Base URL of the OpenAI-compatible upstream; requests go to {upstream}/chat/completions.
    upstream: str = "https://api.openai.com/v1"
    # Base URL of the Anthropic upstream; /v1/messages goes to {anthropic_upstream}/messages.
    anthropic_upstream: str = "https://api.anthropic.com/v1"
    # Sent upstream only when the caller brings no Authorization header of its own (or authenticated
    # to the sidecar with it). Never logged: SecretStr prints as '**********'.
    upstream_api_key: SecretStr | None = None
    # The sidecar's own bearer token; None means no auth.
    auth_token: SecretStr | None = None
    # "open": a failed compression forwards the original request; "closed": it answers with an error.
    fail_mode: Literal["open", "closed"] = "open"

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(120.0, gt=0)  # whole request: compression + upstream
    compress_timeout_s: float = Field(30.0, gt=0)  # compression alone
    upstream_connect_timeout_s: float = Field(10.0, gt=0)
    upstream_max_connections: int = Field(512, ge=1)
    upstream_pool_shards: int = Field(16, ge=1)  # small httpx pools instead of one big one (see proxy.py)

    default_method: str = "extractive"
    default_ratio: float = Field(0.5, gt=0, le=1)  # budget of the chat policy when the request names none
    default_tokenizer: str = "cl100k_base"
    # Tokenizers a request may name: loading arbitrary names or paths is an operator decision.
    allowed_tokenizers: list[str] = ["cl100k_base"]
    allowed_methods: list[str] | None = None  # None: every registered method that is installed
    # Compressor options a request may not set (they load files or pick hardware on the server).
    blocked_options: list[str] = ["model", "device", "model_path", "cache_dir"]
    max_compressors: int = Field(16, ge=1)  # distinct (method, options) instances kept loaded
    preload: list[str] = []  # methods loaded at startup; /readyz waits for them

    # Chat policy defaults (a request may override them in its "ctxzip" field).
    compress_roles: list[str] = ["user", "tool", "function"]
    min_tokens: int = Field(256, ge=0)  # shorter contents pass unchanged
    compress_last_user: bool = False
    split_user: bool = True  # split an unmarked user message into context (compressed) and question
    tool_policy: dict[str, Literal["compress", "never"]] = {}  # by tool name
    default_tool_policy: Literal["compress", "never"] = "compress"
    keep_last_turns: int = Field(0, ge=0)  # under a token budget: the last K turns stay verbatim
    structured_method: str | None = "json"  # for JSON, logs and tables; None: the request's method

    micro_batch: bool = True
    max_batch_size: int = Field(32, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0)
    compress_workers: int = Field(2, ge=1)  # threads running compressions one by one
    cache_size: int = Field(1024, ge=0)  # results kept in the LRU; 0 turns the cache off

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = True

    @field_validator("upstream", "anthropic_upstream")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("upstream must be an http:// or https:// URL")
        return value.rstrip("/")
