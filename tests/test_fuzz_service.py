"""Fuzzing the sidecar's routes with generated bodies on a real server: never a 5xx, never a traceback,
and the keep-alive connection still serves the next request after an error."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ctxzip_service import ServiceSettings, create_app
from tests.support.fuzz import examples, text
from tests.support.upstream import RecordingUpstream, UvicornThread

pytestmark = pytest.mark.timeout(600)
FUZZ = settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def http():
    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as upstream:
        settings = ServiceSettings(upstream=upstream.url + "/v1", anthropic_upstream=upstream.url + "/v1",
                                   default_method="truncate", min_tokens=5,
                                   max_body_bytes=256 * 1024)
        with UvicornThread(create_app(settings)) as sidecar:
            with httpx.Client(base_url=sidecar.url, timeout=60) as client:
                yield client


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
parts = st.one_of(
    text,
    st.lists(st.one_of(st.builds(lambda t, m: {"type": "text", "text": t, **({"ctxzip_compress": m} if m is not None else {})},
                                 text, st.one_of(st.none(), st.booleans())),
                       st.just({"type": "image_url", "image_url": {"url": "data:,"}}),
                       st.builds(lambda v: {"type": "text", "text": json.dumps(v)}, json_values)), max_size=3),
    st.none(),
)
messages = st.lists(st.builds(lambda role, content: {"role": role, "content": content},
                              st.sampled_from(["system", "user", "assistant", "tool", "developer", "x"]), parts),
                    min_size=1, max_size=5)
budget = st.one_of(st.none(), st.builds(lambda t: {"tokens": t}, st.integers(-1, 400)),
                   st.builds(lambda r: {"ratio": r}, st.floats(-0.5, 1.5, allow_nan=False)))


def body_bytes(body) -> bytes:
    # json.dumps escapes a lone surrogate as \\ud800: valid JSON that decodes to invalid Unicode.
    return json.dumps(body).encode()


def post(http: httpx.Client, path: str, content: bytes) -> httpx.Response:
    response = http.post(path, content=content, headers={"content-type": "application/json"})
    event(f"{path} {response.status_code}")
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    # The same connection answers the next request.
    assert http.get("/healthz").status_code == 200
    return response


@FUZZ
@given(payload=st.one_of(
    st.builds(lambda t, q, b: {"text": t, "query": q, "budget": b, "method": "truncate"}, text, st.one_of(st.none(), text), budget),
    st.builds(lambda ts, b: {"documents": [{"text": t, "id": str(i)} for i, t in enumerate(ts)], "budget": b},
              st.lists(text, max_size=4), budget),
    st.builds(lambda m, b: {"messages": m, "budget": b, "policy": {"min_tokens": 1}}, messages, budget),
))
def test_compress_route(http, payload):
    payload = {k: v for k, v in payload.items() if v is not None}
    response = post(http, "/v1/compress", body_bytes(payload))
    if response.status_code == 200:
        data = response.json()
        assert data["budget_tokens"] is None or data["compressed_tokens"] <= data["budget_tokens"]


@FUZZ
@given(chat=messages, override=st.one_of(st.none(), st.builds(lambda b: {"budget": b, "min_tokens": 1}, budget)),
       stream=st.booleans())
def test_chat_completions_route(http, chat, override, stream):
    body = {"model": "m", "messages": chat, "stream": stream}
    if override is not None:
        body["ctxzip"] = {k: v for k, v in override.items() if v is not None}
    post(http, "/v1/chat/completions", body_bytes(body))


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.just(b"[" * 100_000 + b"]" * 100_000),
                     st.just(b'{"text": "' + b"a" * 300_000 + b'", "budget": {"tokens": 5}}'),
                     st.builds(lambda v: json.dumps(v).encode(), json_values)),
       path=st.sampled_from(["/v1/compress", "/v1/chat/completions"]))
def test_any_bytes(http, raw, path):
    post(http, path, raw)


blocks = st.one_of(
    text,
    st.lists(st.one_of(st.builds(lambda t: {"type": "text", "text": t}, text),
                       st.builds(lambda t, i: {"type": "tool_result", "tool_use_id": f"t{i}", "content": t}, text, st.integers(0, 3)),
                       st.builds(lambda v: {"type": "tool_result", "tool_use_id": "t0", "content": json.dumps(v)}, json_values),
                       st.just({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}})),
             max_size=3),
)


@FUZZ
@given(turns=st.lists(st.builds(lambda role, content: {"role": role, "content": content},
                                st.sampled_from(["user", "assistant", "user", "assistant", "system"]), blocks),
                      min_size=1, max_size=5),
       system=st.one_of(st.none(), text), stream=st.booleans(), max_tokens=st.integers(-1, 100))
def test_anthropic_messages_route(http, turns, system, stream, max_tokens):
    turns[0]["role"] = "user"
    body = {"model": "claude-x", "max_tokens": max_tokens, "messages": turns, "stream": stream}
    if system is not None:
        body["system"] = system
    response = post(http, "/v1/messages", body_bytes(body))
    if response.status_code >= 400:
        assert response.json()["type"] == "error"  # Anthropic's own error shape
