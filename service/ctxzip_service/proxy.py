"""Forwarding to the OpenAI-compatible upstream with httpx.

The upstream's answer comes back unchanged: status, body bytes (content-encoding included) and
headers other than hop-by-hop ones; a `text/event-stream` answer is relayed chunk by chunk as it
arrives. The caller's API key goes upstream in the Authorization header and nowhere else.
"""

from __future__ import annotations

import ssl
from typing import Mapping

import httpx
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ctxzip_service.errors import ServiceError
from ctxzip_service.settings import ServiceSettings

# Not forwarded in either direction: per-connection headers, lengths the framework recomputes,
# and the sidecar's own headers.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
    "transfer-encoding", "upgrade", "host", "content-length", "x-ctxzip-key",
})


def make_upstream_clients(settings: ServiceSettings) -> list[httpx.AsyncClient]:
    """Several small connection pools instead of one large one.

    httpcore's pool re-examines every connection it holds (and probes idle sockets) each time a
    request starts or ends, which costs O(connections^2) per request; with dozens of concurrent
    upstream calls that bookkeeping was most of the sidecar's CPU time. Shards keep each pool small.
    """
    shards = max(1, min(settings.upstream_pool_shards, settings.upstream_max_connections))
    per_shard = -(-settings.upstream_max_connections // shards)
    tls = ssl.create_default_context()  # loading the CA bundle once, not once per shard
    return [_client(settings, per_shard, tls) for _ in range(shards)]


def _client(settings: ServiceSettings, connections: int, tls: ssl.SSLContext) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=tls,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        # `read` bounds the wait between two chunks of a stream, not the whole answer.
        timeout=httpx.Timeout(settings.request_timeout_s, connect=settings.upstream_connect_timeout_s),
        follow_redirects=False,
        trust_env=False,  # never send the caller's key through a proxy picked up from the environment
    )


class UpstreamProxy:
    def __init__(self, settings: ServiceSettings, clients: list[httpx.AsyncClient]) -> None:
        self.settings = settings
        self.clients = clients
        self._in_flight = [0] * len(clients)

    def _pick(self) -> int:
        """The shard with the fewest requests under way, so no pool grows past what the load needs."""
        counts = self._in_flight
        return counts.index(min(counts))

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()

    def request_headers(self, incoming: Mapping[str, str], authorization: str | None) -> dict[str, str]:
        """Headers for the upstream: the caller's, minus hop-by-hop, with the chosen Authorization."""
        headers = {k: v for k, v in incoming.items() if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
        if authorization:
            headers["authorization"] = authorization
        elif self.settings.upstream_api_key is not None:
            headers["authorization"] = f"Bearer {self.settings.upstream_api_key.get_secret_value()}"
        # httpx would ask for gzip on its own; ask only for what the caller accepts so bytes pass as they are.
        if not any(k.lower() == "accept-encoding" for k in headers):
            headers["accept-encoding"] = "identity"
        return headers

    async def forward(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str],
        extra_response_headers: Mapping[str, str] | None = None,
        query: str = "",
        base: str | None = None,
    ) -> Response:
        url = f"{base or self.settings.upstream}{path}" + (f"?{query}" if query else "")
        shard = self._pick()
        client = self.clients[shard]
        self._in_flight[shard] += 1
        try:
            upstream = await client.send(client.build_request(method, url, content=body, headers=headers), stream=True)
        except httpx.TimeoutException as exc:
            self._in_flight[shard] -= 1
            raise ServiceError(504, "upstream_timeout", f"the upstream did not answer in time ({type(exc).__name__})",
                               kind="upstream_error") from None
        except httpx.HTTPError as exc:
            self._in_flight[shard] -= 1
            raise ServiceError(502, "upstream_unreachable", f"could not reach the upstream ({type(exc).__name__})",
                               kind="upstream_error") from None
        except BaseException:
            self._in_flight[shard] -= 1
            raise

        async def finish() -> None:
            self._in_flight[shard] -= 1
            await upstream.aclose()

        response_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        response_headers.update(extra_response_headers or {})
        if upstream.headers.get("content-type", "").startswith("text/event-stream"):
            # Relayed as the upstream sends it; the connection goes back to the pool when the stream ends.
            return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                     headers=response_headers, background=BackgroundTask(finish))
        try:
            content = await upstream.aread()
        except httpx.HTTPError as exc:
            raise ServiceError(502, "upstream_broken", f"the upstream answer broke off ({type(exc).__name__})",
                               kind="upstream_error") from None
        finally:
            await finish()
        return Response(content, status_code=upstream.status_code, headers=response_headers)
