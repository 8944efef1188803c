"""`ctxzip serve`: run the sidecar with uvicorn. Flags override CTXZIP_* environment variables."""

from __future__ import annotations

from typing import Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Run the ctxzip REST sidecar (compression API + OpenAI-compatible pass-through).")


@app.callback(invoke_without_command=True)
def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (env CTXZIP_HOST; default 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (env CTXZIP_PORT; default 8088)."),
    upstream: Optional[str] = typer.Option(None, "--upstream", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:9000/v1."),
    anthropic_upstream: Optional[str] = typer.Option(None, "--anthropic-upstream", help="Anthropic base URL for /v1/messages, e.g. http://127.0.0.1:9000/v1."),
    fail_mode: Optional[str] = typer.Option(None, "--fail-mode", help="open: forward the original if compression fails; closed: answer an error."),
    default_method: Optional[str] = typer.Option(None, "--method", help="Default compression method."),
    default_ratio: Optional[float] = typer.Option(None, "--ratio", help="Default budget of the chat policy, as a ratio."),
    min_tokens: Optional[int] = typer.Option(None, "--min-tokens", help="Chat contents shorter than this pass unchanged."),
    preload: list[str] = typer.Option([], "--preload", help="Method to load at startup (repeatable); /readyz waits for it."),
    micro_batch: Optional[bool] = typer.Option(None, "--micro-batch/--no-micro-batch", help="Merge concurrent requests into batched calls."),
    max_batch_size: Optional[int] = typer.Option(None, "--max-batch-size"),
    batch_wait_ms: Optional[float] = typer.Option(None, "--batch-wait-ms"),
    compress_workers: Optional[int] = typer.Option(None, "--compress-workers", help="Threads running compressions."),
    cache_size: Optional[int] = typer.Option(None, "--cache-size", help="Results kept in the LRU cache (0: off)."),
    max_body_bytes: Optional[int] = typer.Option(None, "--max-body-bytes"),
    request_timeout_s: Optional[float] = typer.Option(None, "--request-timeout", help="Seconds per request."),
    compress_timeout_s: Optional[float] = typer.Option(None, "--compress-timeout", help="Seconds per compression (queueing included)."),
    log_level: Optional[str] = typer.Option(None, "--log-level"),
    access_log: Optional[bool] = typer.Option(None, "--access-log/--no-access-log"),
) -> None:
    """Start the sidecar. The sidecar token and upstream key come from CTXZIP_AUTH_TOKEN and
    CTXZIP_UPSTREAM_API_KEY only, so they never show in the process list."""
    import uvicorn
    from pydantic import ValidationError

    from ctxzip_service.app import create_app
    from ctxzip_service.logs import configure_logging
    from ctxzip_service.settings import ServiceSettings

    flags = {
        "host": host, "port": port, "upstream": upstream, "anthropic_upstream": anthropic_upstream, "fail_mode": fail_mode, "default_method": default_method,
        "default_ratio": default_ratio, "min_tokens": min_tokens, "preload": preload or None,
        "micro_batch": micro_batch, "max_batch_size": max_batch_size, "batch_wait_ms": batch_wait_ms,
        "compress_workers": compress_workers, "cache_size": cache_size, "max_body_bytes": max_body_bytes,
        "request_timeout_s": request_timeout_s, "compress_timeout_s": compress_timeout_s, "log_level": log_level, "access_log": access_log,
    }
    try:
        settings = ServiceSettings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        typer.echo(f"error: bad settings: {problems}", err=True)
        raise typer.Exit(2)
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False,
        server_header=False, timeout_graceful_shutdown=10,
    )
