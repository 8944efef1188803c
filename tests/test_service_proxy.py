"""The sidecar as a client sees it: a real uvicorn server on loopback, the official `openai` client
pointed at it, and a real recording upstream behind it."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest

from ctxzip.budget import get_token_counter
from ctxzip_service import ServiceSettings, create_app
from tests.support.upstream import ANSWER, UvicornThread, completion, register_test_compressors

pytestmark = pytest.mark.timeout(120)

UPSTREAM_KEY = "sk-upstream-secret-1234"
SYSTEM = "You are a careful assistant. Answer from the context only."
QUESTION = "Which city is the capital of France?"
CONTEXT = " ".join(
    f"Passage {n}: the river {n} flows through the valley and past the old mill near town {n}. "
    f"Paris is the capital of France and its largest city. The weather on day {n} was mild."
    for n in range(60)
)
counter = get_token_counter("cl100k_base")


def sidecar_settings(upstream, **overrides) -> ServiceSettings:
    register_test_compressors()
    values = dict(upstream=upstream.url + "/v1", default_method="truncate", min_tokens=100)
    values.update(overrides)
    return ServiceSettings(**values)


@pytest.fixture(scope="module")
def sidecar(upstream):
    register_test_compressors()
    app = create_app(sidecar_settings(upstream))
    with UvicornThread(app) as server:
        yield server


@pytest.fixture
def client(sidecar):
    return openai.OpenAI(base_url=sidecar.url + "/v1", api_key=UPSTREAM_KEY, max_retries=0, timeout=30)


def rag_messages(context: str = CONTEXT) -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": context},
        {"role": "user", "content": QUESTION},
    ]


def test_chat_is_compressed_within_budget_and_answer_is_intact(client, upstream):
    budget = 120
    raw = client.chat.completions.with_raw_response.create(
        model="test-model", messages=rag_messages(), extra_body={"ctxzip": {"budget": {"tokens": budget}}}
    )
    sent = upstream.received[-1]
    # The upstream got the compressed context within budget, the rest untouched, none of our fields.
    assert "ctxzip" not in sent
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "user"]
    assert sent["messages"][0]["content"] == SYSTEM
    assert sent["messages"][2]["content"] == QUESTION
    compressed = sent["messages"][1]["content"]
    assert 0 < counter.count(compressed) <= budget < counter.count(CONTEXT)
    assert CONTEXT.startswith(compressed)  # truncate keeps the head, sliced from the original
    # The caller's key went upstream; the client got the upstream's answer byte for byte.
    assert upstream.headers[-1]["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert json.loads(raw.http_response.content) == completion("test-model")
    assert raw.parse().choices[0].message.content == ANSWER
    assert raw.headers["x-upstream"] == "recording"
    # Token accounting in the headers.
    original = int(raw.headers["x-ctxzip-original-tokens"])
    after = int(raw.headers["x-ctxzip-compressed-tokens"])
    assert original == sum(counter.count(m["content"]) for m in rag_messages())
    assert after == original - counter.count(CONTEXT) + counter.count(compressed)
    assert raw.headers["x-ctxzip-status"] == "compressed"
    assert raw.headers["x-ctxzip-method"] == "truncate"


def test_streaming_is_relayed_chunk_by_chunk(client, upstream, sidecar):
    stream = client.chat.completions.create(
        model="test-model", messages=rag_messages(), stream=True,
        extra_body={"ctxzip": {"budget": {"ratio": 0.1}}},
    )
    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices[0].delta.content]
    assert "".join(pieces) == ANSWER
    sent = upstream.received[-1]
    assert sent["stream"] is True
    assert counter.count(sent["messages"][1]["content"]) <= int(0.1 * counter.count(CONTEXT))

    # Chunks arrive as the upstream sends them, not all at the end.
    upstream.stream_delay_s = 0.25
    try:
        arrivals = []
        started = time.monotonic()
        body = {"model": "m", "messages": rag_messages(), "stream": True}
        with httpx.stream("POST", sidecar.url + "/v1/chat/completions", json=body, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-ctxzip-status"] == "compressed"
            for event in response.iter_raw():
                arrivals.append((time.monotonic() - started, event))
    finally:
        upstream.stream_delay_s = 0.0
    events = b"".join(e for _, e in arrivals)
    assert events.endswith(b"data: [DONE]\n\n")
    assert len(arrivals) >= 3
    assert arrivals[-1][0] - arrivals[0][0] > 1.0  # 8 events 0.25 s apart were not buffered into one


def test_short_requests_pass_through_byte_for_byte(sidecar, upstream):
    body = b'{"model":"m","messages":[{"role":"user","content":"hi there"}],"temperature":0.25,"seed":7}'
    response = httpx.post(sidecar.url + "/v1/chat/completions", content=body,
                          headers={"content-type": "application/json", "authorization": "Bearer k"})
    assert response.status_code == 200
    assert response.headers["x-ctxzip-status"] == "unchanged"
    assert response.headers["x-ctxzip-original-tokens"] == response.headers["x-ctxzip-compressed-tokens"]
    assert upstream.received[-1] == json.loads(body)


def test_system_prompt_and_question_are_never_compressed_by_default(client, upstream):
    long_system = SYSTEM + " " + CONTEXT
    long_question = QUESTION + " " + CONTEXT
    messages = [{"role": "system", "content": long_system}, {"role": "user", "content": long_question}]
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=messages, extra_body={"ctxzip": {"budget": {"tokens": 50}}}
    )
    assert raw.headers["x-ctxzip-status"] == "unchanged"
    assert upstream.received[-1]["messages"] == messages


def test_marked_parts_are_compressed_and_marks_removed(client, upstream):
    tool_output = "Tool log line. " * 200
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": tool_output},
        {"role": "user", "content": [
            {"type": "text", "text": CONTEXT, "ctxzip_compress": True},
            {"type": "text", "text": QUESTION},
        ]},
    ]
    client.chat.completions.create(model="m", messages=messages, extra_body={"ctxzip": {"budget": {"tokens": 200}}})
    sent = upstream.received[-1]["messages"]
    assert sent[0] == messages[0] and sent[1] == messages[1]
    assert sent[3]["content"][1] == {"type": "text", "text": QUESTION}
    assert all("ctxzip_compress" not in part for part in sent[3]["content"])
    # One budget across every compressible part (the long tool output and the marked context).
    kept = [sent[2]["content"], sent[3]["content"][0]["text"]]
    assert counter.count("\n\n".join(t for t in kept if t)) <= 200
    assert len(sent[2]["content"]) < len(tool_output) or len(sent[3]["content"][0]["text"]) < len(CONTEXT)


def test_repeated_request_is_served_from_the_cache(client):
    extra = {"ctxzip": {"budget": {"tokens": 77}}}
    first = client.chat.completions.with_raw_response.create(model="m", messages=rag_messages(), extra_body=extra)
    second = client.chat.completions.with_raw_response.create(model="m", messages=rag_messages(), extra_body=extra)
    assert first.headers["x-ctxzip-status"] in ("compressed", "cached")
    assert second.headers["x-ctxzip-status"] == "cached"
    assert second.headers["x-ctxzip-compressed-tokens"] == first.headers["x-ctxzip-compressed-tokens"]


def test_fail_open_forwards_the_original_when_the_compressor_raises(client, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    messages = rag_messages()
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=messages, extra_body={"ctxzip": {"method": "test-exploding", "budget": {"tokens": 50}}}
    )
    assert raw.headers["x-ctxzip-status"] == "failed_open"
    assert raw.parse().choices[0].message.content == ANSWER
    assert upstream.received[-1]["messages"] == messages
    assert "ctxzip" not in upstream.received[-1]
    assert "compression failed, forwarding the original" in caplog.text  # logs were captured...
    assert UPSTREAM_KEY not in caplog.text  # ...and the key is not in them


def test_fail_closed_answers_an_error_and_sends_nothing(upstream):
    app = create_app(sidecar_settings(upstream, fail_mode="closed"))
    before = len(upstream.received)
    with UvicornThread(app) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=UPSTREAM_KEY, max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(
                model="m", messages=rag_messages(),
                extra_body={"ctxzip": {"method": "test-exploding", "budget": {"tokens": 50}}},
            )
    assert info.value.status_code == 503
    assert info.value.body["code"] == "compression_failed"
    assert len(upstream.received) == before


def test_compression_time_limit_fails_open(upstream):
    app = create_app(sidecar_settings(upstream, compress_timeout_s=0.3))
    with UvicornThread(app) as server:
        response = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
            "model": "m", "messages": rag_messages(),
            "ctxzip": {"method": "test-stalling", "options": {"delay_s": 1.5}, "budget": {"tokens": 50}},
        })
        assert response.status_code == 200
        assert response.headers["x-ctxzip-status"] == "failed_open"
        assert upstream.received[-1]["messages"] == rag_messages()
        # The same stall on /v1/compress is a clear 504, not a hang.
        response = httpx.post(server.url + "/v1/compress", timeout=30, json={
            "text": CONTEXT, "method": "test-stalling", "options": {"delay_s": 1.5}, "budget": {"tokens": 50}})
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "compression_timeout"


def test_sidecar_auth_and_key_pass_through(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    settings = sidecar_settings(upstream, auth_token="sidecar-token-xyz", upstream_api_key="sk-operator-key-999")
    with UvicornThread(create_app(settings)) as server:
        url = server.url + "/v1/chat/completions"
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
        for headers in ({}, {"x-ctxzip-key": "wrong"}, {"authorization": "Bearer wrong"}):
            response = httpx.post(url, json=body, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthorized"
        # Sidecar token in its own header: the caller's Authorization goes upstream unchanged.
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=UPSTREAM_KEY, max_retries=0,
                               default_headers={"x-ctxzip-key": "sidecar-token-xyz"})
        assert client.chat.completions.create(model="m", messages=body["messages"]).choices[0].message.content == ANSWER
        assert upstream.headers[-1]["authorization"] == f"Bearer {UPSTREAM_KEY}"
        assert "x-ctxzip-key" not in upstream.headers[-1]
        # Sidecar token as the client's api_key: the operator's key goes upstream instead.
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="sidecar-token-xyz", max_retries=0)
        client.chat.completions.create(model="m", messages=body["messages"])
        assert upstream.headers[-1]["authorization"] == "Bearer sk-operator-key-999"
        # /v1/compress takes the same token.
        response = httpx.post(server.url + "/v1/compress", json={"text": "a b c", "budget": {"tokens": 5}},
                              headers={"authorization": "Bearer sidecar-token-xyz"})
        assert response.status_code == 200
        assert httpx.get(server.url + "/healthz").status_code == 200  # probes need no token
    assert '"status": 401' in caplog.text or "request" in caplog.text  # access lines were captured
    for secret in (UPSTREAM_KEY, "sk-operator-key-999", "sidecar-token-xyz"):
        assert secret not in caplog.text


def test_other_openai_endpoints_pass_through(client):
    assert [m.id for m in client.models.list().data] == ["test-model"]


def test_unreachable_upstream_is_a_clear_502():
    settings = ServiceSettings(upstream="http://127.0.0.1:9/v1", default_method="truncate",
                               upstream_connect_timeout_s=2)
    with UvicornThread(create_app(settings)) as server:
        response = httpx.post(server.url + "/v1/chat/completions",
                              json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_health_readiness_and_metrics(upstream):
    settings = sidecar_settings(upstream, preload=["truncate"])
    with UvicornThread(create_app(settings)) as server:
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["status"] == "ok" and "truncate" in ready["loaded"]
        assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
        httpx.post(server.url + "/v1/compress", json={"text": CONTEXT, "budget": {"tokens": 40}})
        httpx.post(server.url + "/v1/compress", json={"text": CONTEXT, "method": "nope", "budget": {"tokens": 40}})
        text = httpx.get(server.url + "/metrics").text
    assert 'ctxzip_requests_total{endpoint="/v1/compress",status="200"} 1.0' in text
    assert 'ctxzip_requests_total{endpoint="/v1/compress",status="400"} 1.0' in text
    assert f'ctxzip_tokens_in_total{{method="truncate"}} {float(counter.count(CONTEXT))}' in text
    assert 'ctxzip_tokens_out_total{method="truncate"} 40.0' in text
    assert 'ctxzip_errors_total{kind="unknown_method"} 1.0' in text
    assert 'ctxzip_request_seconds_bucket{endpoint="/v1/compress"' in text


def test_readyz_reports_a_failed_preload(upstream):
    with UvicornThread(create_app(sidecar_settings(upstream, preload=["no-such-method"]))) as server:
        deadline = time.monotonic() + 10
        while (body := httpx.get(server.url + "/readyz").json())["status"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert body["status"] == "failed" and "no-such-method" in body["detail"]
        assert httpx.get(server.url + "/readyz").status_code == 503


def test_request_time_limit_bounds_the_wait_but_not_a_running_stream(upstream):
    settings = sidecar_settings(upstream, request_timeout_s=0.6, compress_timeout_s=5, fail_mode="closed")
    with UvicornThread(create_app(settings)) as server:
        # Nothing answered within the limit: a clear 504.
        response = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
            "model": "m", "messages": rag_messages(),
            "ctxzip": {"method": "test-stalling", "options": {"delay_s": 2.0}, "budget": {"tokens": 50}},
        })
        assert response.status_code == 504
        assert response.json()["error"]["code"] == "request_timeout"
        # A stream that started in time runs to its end even when it lasts longer than the limit.
        upstream.stream_delay_s = 0.25
        try:
            started = time.monotonic()
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as response:
                events = b"".join(response.iter_raw())
            elapsed = time.monotonic() - started
        finally:
            upstream.stream_delay_s = 0.0
    assert elapsed > 1.0
    assert events.endswith(b"data: [DONE]\n\n")


def test_long_prompt_is_planned_off_the_event_loop_and_compressed(client, upstream):
    from ctxzip_service.gateway import INLINE_PLAN_CHARS

    context = CONTEXT * 4
    assert len(context) > INLINE_PLAN_CHARS
    client.chat.completions.create(model="m", messages=rag_messages(context),
                                   extra_body={"ctxzip": {"budget": {"tokens": 300}}})
    sent = upstream.received[-1]["messages"]
    assert sent[2]["content"] == QUESTION
    assert 0 < counter.count(sent[1]["content"]) <= 300
