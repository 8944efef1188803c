"""The sidecar as a gateway for real traffic, seen through the official `openai` and `anthropic` clients:
an unmarked RAG message, JSON tool results, a 20-turn agent session, the Anthropic Messages API,
streaming for both APIs, honest accounting, and lone surrogates."""

from __future__ import annotations

import json
import re
import time

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctxzip.budget import get_token_counter
from ctxzip.structured.json_check import elision_problems
from ctxzip_service import ServiceSettings, create_app
from eval.gateway_traces import load_traces, request_body
from tests.support.upstream import UvicornThread, register_test_compressors, wait_until_ready

pytestmark = pytest.mark.timeout(180)
counter = get_token_counter("cl100k_base")
KEY = "sk-upstream-key"


def gateway_settings(upstream, **overrides) -> ServiceSettings:
    register_test_compressors()
    values = dict(upstream=upstream.url + "/v1", anthropic_upstream=upstream.url + "/v1", default_method="truncate",
                  default_ratio=0.4, min_tokens=100)
    values.update(overrides)
    return ServiceSettings(**values)


@pytest.fixture(scope="module")
def sidecar(upstream):
    with UvicornThread(create_app(gateway_settings(upstream))) as server:
        yield server


@pytest.fixture
def oai(sidecar):
    return openai.OpenAI(base_url=sidecar.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture
def claude(sidecar):
    return anthropic.Anthropic(base_url=sidecar.url, api_key=KEY, max_retries=0, timeout=60)


def trace(name: str) -> dict:
    return next(t for t in load_traces() if t["name"] == name)


# -- unmarked prompts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["rag-hotpotqa-0", "rag-hotpotqa-1", "rag-hotpotqa-2", "rag-hotpotqa-3"])
def test_an_unmarked_rag_message_arrives_compressed_with_the_question_byte_identical(oai, upstream, name):
    t = trace(name)
    body = request_body(t)
    raw = oai.chat.completions.with_raw_response.create(
        model=body["model"], messages=body["messages"], extra_body={"ctxzip": {"budget": {"tokens": 600}}})
    sent = upstream.received[-1]["messages"]
    original = body["messages"][1]["content"]
    assert raw.headers["x-ctxzip-status"] == "compressed"
    assert "x-ctxzip-split" in raw.headers and "unsure" not in raw.headers["x-ctxzip-split"]
    assert t["question"] in sent[1]["content"]
    assert sent[1]["content"].endswith(original[original.rindex(t["question"]):])  # the question and what follows
    total = sum(counter.count(m["content"]) for m in sent)
    assert total <= 600 < sum(counter.count(m["content"]) for m in body["messages"])
    assert int(raw.headers["x-ctxzip-compressed-tokens"]) == total


def test_an_unsure_split_is_left_alone_and_said_so(oai, upstream):
    text = " ".join(f"Sentence {n} about nothing in particular." for n in range(200))
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": text}])
    assert upstream.received[-1]["messages"][0]["content"] == text
    assert raw.headers["x-ctxzip-status"] == "unchanged"
    assert "unsure" in raw.headers["x-ctxzip-split"]


# -- JSON tool results ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["json-search-0", "json-listing-0", "json-rows-1"])
def test_json_tool_results_arrive_valid_with_markers_and_no_changed_value(oai, upstream, name):
    body = request_body(trace(name))
    raw = oai.chat.completions.with_raw_response.create(model=body["model"], messages=body["messages"])
    original, sent = body["messages"][3]["content"], upstream.received[-1]["messages"][3]["content"]
    assert raw.headers["x-ctxzip-method"] == "json"
    assert counter.count(sent) < 0.6 * counter.count(original)
    assert elision_problems(original, sent) == []
    assert "omitted here" in sent


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                     lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
                     max_leaves=120)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.lists(_json, min_size=20, max_size=60))
def test_generated_json_tool_results_stay_valid_and_exact(oai, upstream, value):
    content = json.dumps(value, indent=1)
    messages = [{"role": "user", "content": "find it"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": content}]
    oai.chat.completions.create(model="m", messages=messages, extra_body={"ctxzip": {"min_tokens": 1}})
    assert elision_problems(content, upstream.received[-1]["messages"][2]["content"]) == []


def test_a_tool_named_never_is_forwarded_as_it_came(oai, upstream):
    body = request_body(trace("json-search-1"))
    oai.chat.completions.create(model="m", messages=body["messages"],
                                extra_body={"ctxzip": {"tools": {"search": "never"}}})
    assert upstream.received[-1]["messages"][3]["content"] == body["messages"][3]["content"]


@pytest.mark.parametrize("structured_method", ["json", None])
def test_a_long_json_tool_message_never_arrives_as_broken_json(upstream, structured_method):
    """Issue 15, item 6: word-level truncation of a JSON tool message cut a string in half."""
    content = json.dumps([{"id": n, "text": f"record number {n} " * 8} for n in range(80)])
    settings_ = gateway_settings(upstream, default_method="truncate", structured_method=structured_method)
    with UvicornThread(create_app(settings_)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(model="m", messages=[
            {"role": "user", "content": "list them"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": content}])
    sent = upstream.received[-1]["messages"][2]["content"]
    assert json.loads(sent) is not None and elision_problems(content, sent) == []
    if structured_method is None:  # truncation would break it: the message goes as it came
        assert sent == content and raw.headers["x-ctxzip-left-unchanged"] == "2"
    else:
        assert len(sent) < len(content) and raw.headers["x-ctxzip-method"] == "json"


# -- agents and prompt caches ----------------------------------------------------------------------


def test_a_20_turn_agent_session_keeps_its_sent_prefix_byte_identical(oai, upstream):
    t = trace("agent-session-0")
    sent_turns = []
    for turn in range(len(t["turns"])):
        body = request_body(t, turn)
        oai.chat.completions.create(model=body["model"], messages=body["messages"], tools=body["tools"])
        sent_turns.append(upstream.received[-1])
    for before, after in zip(sent_turns, sent_turns[1:]):
        assert after["messages"][: len(before["messages"])] == before["messages"]
    first, last = sent_turns[0], sent_turns[-1]
    assert sum(counter.count(m.get("content") or "") for m in last["messages"]) < \
        0.75 * sum(counter.count(m.get("content") or "") for m in request_body(t)["messages"])
    # Tool calls and their results still pair up.
    calls = [c["id"] for m in last["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    results = [m["tool_call_id"] for m in last["messages"] if m["role"] == "tool"]
    assert calls == results and first["messages"][0] == request_body(t)["messages"][0]


def test_under_a_token_budget_the_last_turns_stay_verbatim(oai, upstream):
    t = trace("agent-session-1")
    body = request_body(t)
    budget = 12_000
    oai.chat.completions.create(model=body["model"], messages=body["messages"], tools=body["tools"],
                                extra_body={"ctxzip": {"budget": {"tokens": budget}, "keep_last_turns": 2}})
    sent = upstream.received[-1]["messages"]
    assert sum(counter.count(m.get("content") or "") for m in sent) <= budget
    assert sent[-3:] == body["messages"][-3:]


# -- Anthropic Messages API -------------------------------------------------------------------------


def anthropic_body(t: dict) -> dict:
    """An OpenAI-shaped trace as an Anthropic Messages request (system on top, tool_use / tool_result blocks)."""
    system, messages = None, []
    for m in t["messages"]:
        if m["role"] == "system":
            system = m["content"]
        elif m["role"] == "tool":
            messages.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": m["tool_call_id"], "content": m["content"]}]})
        elif m.get("tool_calls"):
            messages.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": json.loads(c["function"]["arguments"])}
                for c in m["tool_calls"]]})
        else:
            messages.append({"role": m["role"], "content": m["content"]})
    return {"model": "claude-test", "max_tokens": 100, "system": system, "messages": messages}


def test_anthropic_messages_compress_rag_and_tool_results(claude, upstream):
    body = anthropic_body(trace("rag-squad-0"))
    raw = claude.messages.with_raw_response.create(**body, extra_body={"ctxzip": {"budget": {"ratio": 0.3}}})
    sent = upstream.received[-1]
    assert raw.headers["x-ctxzip-status"] == "compressed" and raw.parse().content[0].text
    assert sent["system"] == body["system"] and "ctxzip" not in sent
    assert trace("rag-squad-0")["question"] in sent["messages"][0]["content"]
    body = anthropic_body(trace("json-rows-0"))
    raw = claude.messages.with_raw_response.create(**body)
    block = upstream.received[-1]["messages"][2]["content"][0]
    assert block["type"] == "tool_result" and raw.headers["x-ctxzip-method"] == "json"
    assert elision_problems(body["messages"][2]["content"][0]["content"], block["content"]) == []


def test_anthropic_streaming_is_relayed_event_by_event(upstream, sidecar):
    upstream.stream_delay_s = 0.05
    try:
        client = anthropic.Anthropic(base_url=sidecar.url, api_key=KEY, max_retries=0)
        arrivals = []
        with client.messages.stream(model="claude-test", max_tokens=10,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for text in stream.text_stream:
                arrivals.append((time.perf_counter(), text))
        assert "".join(t for _, t in arrivals) == "Paris is the capital of France."
        assert arrivals[-1][0] - arrivals[0][0] > 0.15  # spread out, not delivered at the end
    finally:
        upstream.stream_delay_s = 0.0


def test_openai_streaming_is_relayed_chunk_by_chunk(upstream, oai):
    upstream.stream_delay_s = 0.05
    try:
        arrivals = [(time.perf_counter(), c) for c in oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True)]
        assert len(arrivals) >= 6 and arrivals[-1][0] - arrivals[0][0] > 0.15
    finally:
        upstream.stream_delay_s = 0.0


@pytest.mark.parametrize("body,status,kind", [
    ({"model": "m", "messages": []}, 400, "invalid_request_error"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_request_error"),
    ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "ctxzip": {"method": "nope"}},
     400, "invalid_request_error"),
])
def test_bad_anthropic_requests_get_anthropic_errors(sidecar, body, status, kind):
    response = httpx.post(sidecar.url + "/v1/messages", json=body)
    assert response.status_code == status
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == kind
    kwargs = {k: v for k, v in body.items() if k != "ctxzip"}
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=sidecar.url, api_key=KEY, max_retries=0).messages.create(
            **{**kwargs, "max_tokens": 5}, extra_body={"ctxzip": body["ctxzip"]} if "ctxzip" in body else None)


def test_malformed_json_on_the_anthropic_route_is_an_anthropic_error(sidecar):
    response = httpx.post(sidecar.url + "/v1/messages", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


# -- honest accounting ------------------------------------------------------------------------------


def test_prometheus_counts_tokens_in_and_out_by_route_method_and_kind(oai, sidecar):
    body = request_body(trace("json-rows-2"))
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=body["messages"])
    metrics = httpx.get(sidecar.url + "/metrics").text
    line = re.search(r'ctxzip_chat_tokens_in_total\{kind="json",method="json",route="/v1/chat/completions"\} (\S+)', metrics)
    assert line and float(line.group(1)) >= counter.count(body["messages"][3]["content"])
    assert 'ctxzip_chat_tokens_out_total{kind="json",method="json",route="/v1/chat/completions"}' in metrics
    assert int(raw.headers["x-ctxzip-compressed-tokens"]) < int(raw.headers["x-ctxzip-original-tokens"])


# -- lone surrogates (issue 15, item 5) ---------------------------------------------------------------


def test_a_lone_surrogate_in_a_marked_part_neither_crashes_nor_breaks_the_connection(upstream):
    with UvicornThread(create_app(gateway_settings(upstream, default_method="extractive"))) as server:
        text = ("The tower \\ud800 stands in Paris. " * 200)
        body = ('{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "ctxzip_compress": true, '
                f'"text": "{text}"}}, {{"type": "text", "text": "Where is the tower?"}}]}}]}}').encode()
        with httpx.Client(base_url=server.url, timeout=120) as client:  # one keep-alive connection for both
            first = client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
            second = client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert first.status_code == 200 and second.status_code == 200
        assert first.headers["x-ctxzip-status"] == "compressed"
        sent = upstream.received[-2]["messages"][0]["content"][0]["text"]
        assert "\ud800" in sent and len(sent) < len(text)  # kept where its sentence was kept, as it came


# -- the same through `ctxzip serve`, as an operator starts it ----------------------------------------


def test_ctxzip_serve_with_both_official_clients(upstream):
    import os
    import subprocess
    import sys

    from tests.support.upstream import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "ctxzip", "serve", "--host", "127.0.0.1", "--port", str(port), "--upstream",
         upstream.url + "/v1", "--anthropic-upstream", upstream.url + "/v1", "--method", "truncate", "--min-tokens", "100",
         "--no-access-log"], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url)
        t = trace("rag-squad-2")
        body = request_body(t)
        raw = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0).chat.completions.with_raw_response.create(
            model="m", messages=body["messages"], extra_body={"ctxzip": {"budget": {"tokens": 500}}})
        sent = upstream.received[-1]["messages"][1]["content"]
        assert raw.headers["x-ctxzip-status"] == "compressed" and sent.endswith(t["question"])
        assert sum(counter.count(m["content"]) for m in upstream.received[-1]["messages"]) <= 500
        claude_body = anthropic_body(trace("json-search-2"))
        with anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0).messages.stream(**claude_body) as stream:
            assert "".join(stream.text_stream) == "Paris is the capital of France."
        block = upstream.received[-1]["messages"][2]["content"][0]
        original = claude_body["messages"][2]["content"][0]["content"]
        assert len(block["content"]) < len(original) and elision_problems(original, block["content"]) == []
        assert upstream.received[-1]["stream"] is True
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_edge_errors_on_the_anthropic_route_are_anthropic_shaped(upstream):
    app = create_app(gateway_settings(upstream, max_body_bytes=2048, auth_token="sidecar-token"))
    with UvicornThread(app) as server:
        big = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 5000}]}
        too_large = httpx.post(server.url + "/v1/messages", json=big, headers={"x-ctxzip-key": "sidecar-token"})
        assert too_large.status_code == 413 and too_large.json()["error"]["type"] == "request_too_large"
        small = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        unauthorised = httpx.post(server.url + "/v1/messages", json=small)
        assert unauthorised.status_code == 401 and unauthorised.json() == {
            "type": "error", "error": {"type": "authentication_error", "message": unauthorised.json()["error"]["message"]}}
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0).messages.create(**small)


def test_compress_api_messages_use_the_same_splitter(sidecar):
    t = trace("rag-hotpotqa-3")
    body = {"messages": request_body(t)["messages"], "budget": {"ratio": 0.4}, "method": "truncate"}
    answer = httpx.post(sidecar.url + "/v1/compress", json=body, timeout=60).json()
    message = answer["messages"][1]["content"]
    assert answer["info"]["splits"] == {"1": "last_paragraph"} and answer["info"]["content"] == ["context"]
    assert message.endswith("\n\n" + t["question"]) and len(message) < len(body["messages"][1]["content"])
    assert answer["compressed_tokens"] < answer["original_tokens"] and answer["documents"][0]["id"] == "1"
