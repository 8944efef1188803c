"""Property-based fuzzing of the sidecar's OpenAPI spec: whatever schemathesis sends, no 5xx."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from ctxzip_service import ServiceSettings, create_app
from tests.support.upstream import RecordingUpstream

# The upstream is a real app behind an in-process transport, so forwarding never fails for network reasons.
upstream_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=RecordingUpstream(record=False).app()))
app = create_app(
    ServiceSettings(upstream="http://upstream.test/v1", anthropic_upstream="http://upstream.test/v1",
                    default_method="truncate", min_tokens=8, cache_size=64),
    upstream_client=upstream_client,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE], max_examples=40
)


@pytest.mark.timeout(300)
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])
