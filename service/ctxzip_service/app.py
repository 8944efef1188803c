"""The FastAPI app: `create_app(settings, upstream_client=None)`.

Routes: POST /v1/compress, POST /v1/chat/completions (OpenAI-compatible, compressed by policy, then
forwarded), other /v1/* forwarded as they are, GET /healthz, /readyz, /metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ctxzip.budget import Budget
from ctxzip.chat import BudgetFit, ChatPlan, plan_chat
from ctxzip.document import CompressionResult, Document
from ctxzip.errors import CtxzipError
from ctxzip_service.engine import CompressionEngine
from ctxzip_service.errors import ServiceError, from_ctxzip_error
from ctxzip_service.logs import get_logger, log_event
from ctxzip_service.metrics import Metrics
from ctxzip_service.middleware import EdgeMiddleware
from ctxzip_service.policy import message_parts, resolve_policy, rewrite_messages
from ctxzip_service.proxy import UpstreamProxy, make_upstream_clients
from ctxzip_service.schemas import (
    ChatCompletionRequest, ChatMessage, CompressRequest, CompressResponse, ErrorResponse, Health, PolicyIn,
)
from ctxzip_service.settings import ServiceSettings

ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 413, 422, 502, 503, 504)}


@dataclass
class ChatCompression:
    """What the policy did to a list of messages."""

    plan: ChatPlan
    replacements: dict[str, str]
    result: CompressionResult | None
    cached: bool
    compressed_tokens: int  # the whole request's texts after compression, counted part by part


INLINE_PLAN_CHARS = 20_000  # below this, counting tokens on the event loop is cheaper than a thread hop


def _text_size(messages: list[ChatMessage]) -> int:
    size = 0
    for message in messages:
        if isinstance(message.content, str):
            size += len(message.content)
        elif message.content:
            size += sum(len(part.text or "") for part in message.content)
    return size


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def create_app(settings: ServiceSettings | None = None, upstream_client: httpx.AsyncClient | None = None) -> FastAPI:
    """The sidecar app. `upstream_client` replaces the upstream connection pools (tests inject one)."""
    settings = settings or ServiceSettings()
    metrics = Metrics()
    engine = CompressionEngine(settings, metrics)
    logger = get_logger()
    owns_client = upstream_client is None
    proxy = UpstreamProxy(settings, [upstream_client] if upstream_client else make_upstream_clients(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(engine.preload()) if settings.preload else None
        log_event(logger, logging.INFO, "started", upstream=settings.upstream, fail_mode=settings.fail_mode,
                  methods=engine.methods(), micro_batch=settings.micro_batch)
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
            if owns_client:
                await proxy.aclose()

    app = FastAPI(
        title="ctxzip sidecar",
        version="0.1.0",
        summary="Compress prompts and retrieved context under a token budget; OpenAI-compatible pass-through.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.engine, app.state.metrics = settings, engine, metrics
    app.add_middleware(EdgeMiddleware, settings=settings, metrics=metrics, logger=logger)

    # -- errors: always JSON, never a traceback -----------------------------------------------

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        metrics.errors.labels(exc.code).inc()
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            error = ServiceError(400, "invalid_json", "the request body is not valid JSON")
        else:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
                for e in errors[:5]
            )
            error = ServiceError(400, "invalid_request", f"invalid request: {where}")
        metrics.errors.labels(error.code).inc()
        return JSONResponse(error.body(), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.errors.labels(code).inc()
        body = ServiceError(exc.status_code, code, str(exc.detail)).body()
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels("internal").inc()
        logger.error("unhandled error", exc_info=exc, extra={"fields": {"path": request.url.path}})
        body = ServiceError(500, "internal_error", "internal error", kind="server_error").body()
        return JSONResponse(body, status_code=500)

    # -- auth: the sidecar's own token, in X-Ctxzip-Key or Authorization: Bearer ---------------

    async def require_auth(request: Request) -> bool:
        """True when the Authorization header carried the sidecar token (so it must not go upstream)."""
        if settings.auth_token is None:
            return False
        expected = settings.auth_token.get_secret_value().encode()
        key = request.headers.get("x-ctxzip-key")
        if key is not None and hmac.compare_digest(key.encode(), expected):
            return False
        bearer = _bearer(request.headers.get("authorization"))
        if bearer is not None and hmac.compare_digest(bearer.encode(), expected):
            return True
        raise ServiceError(401, "unauthorized", "missing or wrong sidecar token (X-Ctxzip-Key or Authorization: Bearer)",
                           kind="authentication_error")

    # -- shared by both compression endpoints -------------------------------------------------

    async def compress_messages(messages: list[ChatMessage], override: PolicyIn | None) -> ChatCompression:
        override = override or PolicyIn()
        method = engine.check_method(override.method, override.options)
        budget = engine.budget(override.budget)
        policy = resolve_policy(settings.compress_roles, settings.min_tokens, settings.compress_last_user, override)
        counter = budget.counter
        if _text_size(messages) > INLINE_PLAN_CHARS:  # counting a long prompt's tokens would stall the loop
            plan = await anyio.to_thread.run_sync(plan_chat, message_parts(messages), policy, counter)
        else:
            plan = plan_chat(message_parts(messages), policy, counter)
        if not plan.segments or not override.enabled:
            return ChatCompression(plan, {}, None, False, plan.original_tokens)
        documents = [Document(s.text, s.key) for s in plan.segments]
        limit, room = plan.limits(budget)
        try:
            fit = BudgetFit(room, limit, what="the request")
            for room in fit:
                result, cached = await engine.compress(
                    method, override.options, documents, plan.query, Budget(tokens=room, tokenizer=budget.tokenizer)
                )
                texts = {d.id: d.text for d in result.documents}
                replacements = {s.key: texts.get(s.key, "") for s in plan.segments}
                used = plan.fixed_tokens + sum(counter.count_many(list(replacements.values())))
                if fit.accept(result.compressed_tokens, used):
                    break
        except CtxzipError as exc:
            raise from_ctxzip_error(exc) from None
        return ChatCompression(plan, replacements, result, cached, used)

    # -- routes -----------------------------------------------------------------------------------

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz() -> Health:
        """The process is up (models may still be loading)."""
        return Health(status="ok", methods=engine.methods(), loaded=engine.loaded())

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}}, tags=["operations"])
    async def readyz() -> Response:
        """Ready when the models named in `preload` are loaded."""
        if engine.load_error:
            health = Health(status="failed", detail=engine.load_error, methods=engine.methods())
            return JSONResponse(health.model_dump(), status_code=503)
        if not engine.ready:
            return JSONResponse(Health(status="loading", methods=engine.methods()).model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", methods=engine.methods(), loaded=engine.loaded()).model_dump())

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/compress", response_model=CompressResponse, responses=ERRORS, tags=["compression"])
    async def compress(body: CompressRequest, _: bool = Depends(require_auth)) -> CompressResponse:
        """Compress text, documents or chat messages under a budget; returns the CompressionResult."""
        if body.messages is not None:
            override = (body.policy or PolicyIn()).model_copy(
                update={"method": body.method, "budget": body.budget, "options": body.options}
            )
            done = await compress_messages(body.messages, override)
            raw = [m.model_dump(exclude_unset=True) for m in body.messages]
            messages = rewrite_messages(raw, done.replacements)
            if done.result is None:  # nothing the policy may compress
                tokens = done.plan.original_tokens
                return CompressResponse(
                    text="", documents=[], kept=[], original_tokens=tokens, compressed_tokens=tokens, ratio=1.0,
                    method=engine.check_method(body.method, body.options), budget_tokens=None,
                    tokenizer=engine.budget(body.budget).tokenizer, info={"unchanged": True}, messages=messages,
                )
            return CompressResponse(**done.result.to_dict(), cached=done.cached, messages=messages)
        method = engine.check_method(body.method, body.options)
        budget: Budget = engine.budget(body.budget)
        if body.text is not None:
            documents = [Document(body.text, "0")]
        else:
            ids = [d.id for d in body.documents]
            if len(set(i for i in ids if i is not None)) != len([i for i in ids if i is not None]):
                raise ServiceError(400, "invalid_input", "document ids must be unique")
            documents = [Document(d.text, d.id if d.id is not None else str(n), d.metadata)
                         for n, d in enumerate(body.documents)]
        result, cached = await engine.compress(method, body.options, documents, body.query, budget)
        return CompressResponse(**result.to_dict(), cached=cached)

    @app.post(
        "/v1/chat/completions",
        responses={200: {"description": "The upstream's answer, unchanged (JSON, or an SSE stream)"}, **ERRORS},
        tags=["openai"],
    )
    async def chat_completions(
        body: ChatCompletionRequest, request: Request, sidecar_key_in_authorization: bool = Depends(require_auth)
    ) -> Response:
        """OpenAI chat completions: compress by policy, forward upstream, relay the answer."""
        raw = await request.body()
        status = "unchanged"
        headers: dict[str, str] = {}
        try:
            done = await compress_messages(body.messages, body.ctxzip)
        except ServiceError as exc:
            if exc.status < 500 or settings.fail_mode == "closed":
                raise
            done, status = None, "failed_open"
            log_event(logger, logging.WARNING, "compression failed, forwarding the original", code=exc.code)
        except Exception as exc:  # a compressor bug must not take the caller's request down
            metrics.errors.labels("compression_failed").inc()
            if settings.fail_mode == "closed":
                logger.error("compression failed", exc_info=exc)
                raise ServiceError(503, "compression_failed", f"compression failed ({type(exc).__name__})",
                                   kind="server_error") from None
            done, status = None, "failed_open"
            log_event(logger, logging.WARNING, "compression failed, forwarding the original", error=type(exc).__name__)

        if done is not None:
            if done.result is not None:
                status = "cached" if done.cached else "compressed"
                headers["x-ctxzip-method"] = done.result.method
            headers["x-ctxzip-original-tokens"] = str(done.plan.original_tokens)
            headers["x-ctxzip-compressed-tokens"] = str(done.compressed_tokens)
            if done.result is not None or done.plan.marked or body.ctxzip is not None:
                payload: dict[str, Any] = json.loads(raw)
                payload.pop("ctxzip", None)
                payload["messages"] = rewrite_messages(payload["messages"], done.replacements)
                raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        else:  # fail-open: the original request, less our own field and marks
            payload = json.loads(raw)
            payload.pop("ctxzip", None)
            payload["messages"] = rewrite_messages(payload["messages"], {})
            raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers["x-ctxzip-status"] = status
        authorization = None if sidecar_key_in_authorization else request.headers.get("authorization")
        upstream_headers = proxy.request_headers(request.headers, authorization)
        upstream_headers["content-type"] = "application/json"
        return await proxy.forward("POST", "/chat/completions", raw, upstream_headers, headers)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def passthrough(path: str, request: Request, sidecar_key_in_authorization: bool = Depends(require_auth)):
        """Other OpenAI endpoints (models, embeddings, ...) go upstream untouched."""
        if path in ("compress", "chat/completions"):  # ours, reached with the wrong HTTP method
            raise StarletteHTTPException(405, "Method Not Allowed")
        authorization = None if sidecar_key_in_authorization else request.headers.get("authorization")
        upstream_headers = proxy.request_headers(request.headers, authorization)
        return await proxy.forward(
            request.method, f"/{path}", await request.body(), upstream_headers, query=request.url.query
        )

    return app
