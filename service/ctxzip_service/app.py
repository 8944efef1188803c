"""The FastAPI app: `create_app(settings, upstream_client=None)`.

Routes: POST /v1/compress, POST /v1/chat/completions (OpenAI-compatible, compressed by policy, then
forwarded), POST /v1/messages (Anthropic Messages, the same policy, errors in Anthropic's shape), other
/v1/* forwarded as they are, GET /healthz, /readyz, /metrics.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from ctxzip.budget import Budget
from ctxzip.document import Document, check_unicode
from ctxzip.errors import CtxzipError
from ctxzip_service import anthropic as anthropic_api
from ctxzip_service.engine import CompressionEngine
from ctxzip_service.errors import ServiceError, from_ctxzip_error
from ctxzip_service.gateway import ChatCompression, ChatCompressor
from ctxzip_service.logs import get_logger, log_event
from ctxzip_service.metrics import Metrics
from ctxzip_service.middleware import EdgeMiddleware
from ctxzip_service.policy import message_parts, rewrite_messages
from ctxzip_service.proxy import UpstreamProxy, make_upstream_clients
from ctxzip_service.schemas import (
    ChatCompletionRequest, CompressRequest, CompressResponse, ErrorResponse, Health, PolicyIn,
)
from ctxzip_service.settings import ServiceSettings

ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 413, 422, 502, 503, 504)}


ANTHROPIC_ROUTE = "/v1/messages"


def serialise(payload: dict) -> bytes:
    """JSON bytes for the upstream. A lone surrogate (legal as a JSON escape, not as UTF-8) cannot be
    written as UTF-8, so such a payload goes as ASCII JSON with the escapes it came with."""
    try:
        return json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload, ensure_ascii=True).encode("ascii")


def error_response(request: Request, status: int, body: dict, headers=None) -> JSONResponse:
    """OpenAI's error shape everywhere but on the Anthropic route, which answers in Anthropic's."""
    if request.url.path == ANTHROPIC_ROUTE:
        body = anthropic_api.error_body(status, body["error"]["message"])
    return JSONResponse(body, status_code=status, headers=headers)


def _bearer(value: str | None) -> str | None:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def check_strings_unicode(value: Any, where: str) -> None:
    """Every string (keys too) of a JSON value must be valid Unicode: InvalidInputError (400) names the first bad one."""
    if isinstance(value, str):
        check_unicode(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_strings_unicode(key, where)
            check_strings_unicode(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_strings_unicode(item, f"{where}[{index}]")


def create_app(settings: ServiceSettings | None = None, upstream_client: httpx.AsyncClient | None = None) -> FastAPI:
    """The sidecar app. `upstream_client` replaces the upstream connection pools (tests inject one)."""
    settings = settings or ServiceSettings()
    metrics = Metrics()
    engine = CompressionEngine(settings, metrics)
    chat = ChatCompressor(settings, engine, metrics)
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
        return error_response(request, exc.status, exc.body())

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
        return error_response(request, 400, error.body())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        metrics.errors.labels(code).inc()
        body = ServiceError(exc.status_code, code, str(exc.detail)).body()
        return error_response(request, exc.status_code, body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        metrics.errors.labels("internal").inc()
        logger.error("unhandled error", exc_info=exc, extra={"fields": {"path": request.url.path}})
        body = ServiceError(500, "internal_error", "internal error", kind="server_error").body()
        return error_response(request, 500, body)

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

    async def compress_or_fail_open(parts, override: PolicyIn | None, route: str) -> tuple[ChatCompression | None, str]:
        """(what the policy did, status); None and "failed_open" when compression failed and the
        original goes upstream. Errors the caller made are raised (4xx) in both fail modes."""
        try:
            done = await chat.compress(parts, override, route)
        except ServiceError as exc:
            if exc.status < 500 or settings.fail_mode == "closed":
                raise
            log_event(logger, logging.WARNING, "compression failed, forwarding the original", code=exc.code)
            return None, "failed_open"
        except Exception as exc:  # a compressor bug must not take the caller's request down
            metrics.errors.labels("compression_failed").inc()
            if settings.fail_mode == "closed":
                logger.error("compression failed", exc_info=exc)
                raise ServiceError(503, "compression_failed", f"compression failed ({type(exc).__name__})",
                                   kind="server_error") from None
            log_event(logger, logging.WARNING, "compression failed, forwarding the original", error=type(exc).__name__)
            return None, "failed_open"
        status = ("cached" if done.cached else "compressed") if done.compressed else "unchanged"
        return done, status

    async def relay(request: Request, path: str, raw: bytes, payload_changed: bool, rewrite, done, status: str,
                    sidecar_key_in_authorization: bool, base: str | None = None) -> Response:
        """Forward the request (rewritten only when something changed, else its own bytes) and relay the answer."""
        if payload_changed:
            raw = serialise(rewrite(json.loads(raw)))
        headers = done.headers() if done is not None else {}
        headers["x-ctxzip-status"] = status
        metrics.chat_requests.labels(request.url.path, status).inc()
        authorization = None if sidecar_key_in_authorization else request.headers.get("authorization")
        upstream_headers = proxy.request_headers(request.headers, authorization)
        upstream_headers["content-type"] = "application/json"
        return await proxy.forward("POST", path, raw, upstream_headers, headers, base=base)

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
            raw = [m.model_dump(exclude_unset=True) for m in body.messages]
            try:  # the answer carries them back as JSON, which cannot hold a lone surrogate
                check_strings_unicode(raw, "messages")
            except CtxzipError as exc:
                raise from_ctxzip_error(exc) from None
            override = (body.policy or PolicyIn()).model_copy(
                update={"method": body.method, "budget": body.budget, "options": body.options}
            )
            done = await chat.compress(message_parts(body.messages), override, "/v1/compress")
            messages = rewrite_messages(raw, done.replacements)
            budget = engine.budget(body.budget)
            texts = [(key, text) for key, text in done.replacements.items()]
            info: dict[str, Any] = {"splits": done.plan.splits, "content": sorted({s.kind for s in done.plan.segments})}
            if done.left:
                info["left_unchanged"] = done.left
            if not done.compressed:
                info["unchanged"] = True
            tokens_in, tokens_out = done.plan.original_tokens, done.compressed_tokens
            if budget.tokens is not None and tokens_out > budget.tokens:  # what the policy never compresses is over it
                raise ServiceError(422, "budget_too_small", f"the messages keep {tokens_out} tokens that are never "
                                   f"compressed (system, the question, recent turns), over the budget of {budget.tokens}")
            return CompressResponse(
                text="\n\n".join(text for _, text in texts), documents=[{"text": t, "id": k, "metadata": {}} for k, t in texts],
                kept=[], original_tokens=tokens_in, compressed_tokens=tokens_out,
                ratio=tokens_out / tokens_in if tokens_in else 1.0,
                method=",".join(done.methods) or engine.check_method(body.method, body.options),
                budget_tokens=budget.tokens, tokenizer=budget.tokenizer, info=info, cached=done.cached,
                messages=messages,
            )
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
        done, status = await compress_or_fail_open(message_parts(body.messages), body.ctxzip, request.url.path)
        # Our own field and the marks never go upstream; without them and without a change, the
        # caller's bytes go as they came (a fail-open never re-serialises what failed to serialise).
        changed = body.ctxzip is not None or any(
            isinstance(m.content, list) and any(p.ctxzip_compress is not None for p in m.content) for m in body.messages
        ) or bool(done and done.replacements)
        replacements = done.replacements if done is not None else {}

        def rewrite(payload: dict) -> dict:
            payload.pop("ctxzip", None)
            payload["messages"] = rewrite_messages(payload["messages"], replacements)
            return payload

        return await relay(request, "/chat/completions", raw, changed, rewrite, done, status,
                           sidecar_key_in_authorization)

    @app.post(
        ANTHROPIC_ROUTE,
        responses={200: {"description": "The upstream's answer, unchanged (JSON, or an SSE stream)"},
                   **{status: {"description": "An error in Anthropic's shape"} for status in (400, 401, 413, 422, 502, 503, 504)}},
        tags=["anthropic"],
    )
    async def anthropic_messages(body: anthropic_api.MessagesRequest, request: Request,
                                 sidecar_key_in_authorization: bool = Depends(require_auth)) -> Response:
        """Anthropic Messages: system, text blocks and tool_result blocks compressed by the same policy,
        forwarded to the Anthropic upstream, the answer (an SSE stream included) relayed as it comes."""
        raw = await request.body()
        payload = json.loads(raw)
        parts = anthropic_api.message_parts(payload)
        done, status = await compress_or_fail_open(parts, body.ctxzip, request.url.path)
        changed = body.ctxzip is not None or any(p.mark is not None for p in parts) or bool(done and done.replacements)
        replacements = done.replacements if done is not None else {}
        return await relay(request, "/messages", raw, changed,
                           lambda payload: anthropic_api.rewrite_request(payload, replacements), done, status,
                           sidecar_key_in_authorization, base=settings.anthropic_upstream)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "DELETE"], include_in_schema=False)
    async def passthrough(path: str, request: Request, sidecar_key_in_authorization: bool = Depends(require_auth)):
        """Other OpenAI endpoints (models, embeddings, ...) go upstream untouched."""
        if path in ("compress", "chat/completions", "messages"):  # ours, reached with the wrong HTTP method
            raise StarletteHTTPException(405, "Method Not Allowed")
        authorization = None if sidecar_key_in_authorization else request.headers.get("authorization")
        upstream_headers = proxy.request_headers(request.headers, authorization)
        return await proxy.forward(
            request.method, f"/{path}", await request.body(), upstream_headers, query=request.url.query
        )

    return app
