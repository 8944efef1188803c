"""Bad input gets a 4xx with a clear JSON error, never a 5xx (real server on loopback)."""

from __future__ import annotations

import httpx
import pytest

from ctxzip_service import ServiceSettings, create_app
from tests.support.upstream import RecordingUpstream, UvicornThread

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server():
    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as upstream:
        settings = ServiceSettings(upstream=upstream.url + "/v1", default_method="truncate", max_body_bytes=64 * 1024)
        with UvicornThread(create_app(settings)) as sidecar:
            yield sidecar


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


CHAT = "/v1/chat/completions"
GOOD_CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path", [CHAT, "/v1/compress"])
@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"model": "m", "messages": [}'])
def test_malformed_json(http, path, body):
    response = http.post(path, content=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")


@pytest.mark.parametrize("body", [
    {"model": "m", "messages": "hello"},
    {"model": "m", "messages": [{"role": 5, "content": "x"}]},
    {"model": "m", "messages": [{"content": "no role"}]},
    {"model": "m", "messages": [{"role": "user", "content": 12}]},
    {"model": "m", "messages": [{"role": "user", "content": [{"text": "part without type"}]}]},
    {"model": 3, "messages": [{"role": "user", "content": "x"}]},
    {"messages": [{"role": "user", "content": "x"}]},
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "ctxzip": {"budget": {"tokens": "many"}}},
    {"model": "m", "messages": [{"role": "user", "content": "x"}], "ctxzip": {"unknown_knob": 1}},
    [1, 2, 3],
    "just a string",
])
def test_wrong_types_on_chat(http, body):
    error = assert_error(http.post(CHAT, json=body), 400, "invalid_request")
    assert "invalid request" in error["message"]


@pytest.mark.parametrize("body", [
    {"text": 42, "budget": {"tokens": 10}},
    {"documents": [{"id": "a"}], "budget": {"tokens": 10}},
    {"documents": "not a list", "budget": {"tokens": 10}},
    {"text": "a b c"},
    {"text": "a b c", "budget": 10},
    {"text": "a b c", "documents": [{"text": "d"}], "budget": {"tokens": 10}},
    {"budget": {"tokens": 10}},
    {"text": "a b c", "budget": {"tokens": 10}, "options": "x"},
])
def test_wrong_types_on_compress(http, body):
    assert_error(http.post("/v1/compress", json=body), 400, "invalid_request")


def test_empty_messages(http):
    error = assert_error(http.post(CHAT, json={"model": "m", "messages": []}), 400, "invalid_request")
    assert "messages" in error["message"]
    assert_error(http.post("/v1/compress", json={"messages": [], "budget": {"tokens": 5}}), 400, "invalid_request")
    assert_error(http.post("/v1/compress", json={"documents": [], "budget": {"tokens": 5}}), 400, "invalid_request")


def test_unknown_method(http):
    error = assert_error(http.post("/v1/compress", json={"text": "a b c", "method": "zip-it", "budget": {"tokens": 2}}),
                         400, "unknown_method")
    assert "zip-it" in error["message"] and "truncate" in error["message"]
    body = {**GOOD_CHAT, "ctxzip": {"method": "zip-it"}}
    assert_error(http.post(CHAT, json=body), 400, "unknown_method")


@pytest.mark.parametrize("budget", [{"tokens": 0}, {"tokens": -5}, {"ratio": 0}, {"ratio": 1.5},
                                    {"tokens": 10, "ratio": 0.5}, {}])
def test_malformed_budget(http, budget):
    assert_error(http.post("/v1/compress", json={"text": "a b c", "budget": budget}), 400, "invalid_request")


def test_impossible_budget(http):
    numbers = " ".join(str(1000 + n) for n in range(200))
    body = {"text": numbers, "budget": {"tokens": 3}, "options": {"protection": {"numbers": True}}}
    error = assert_error(http.post("/v1/compress", json=body), 422, "budget_too_small")
    assert "budget" in error["message"]
    # A ratio so small it resolves to zero tokens.
    assert_error(http.post("/v1/compress", json={"text": "a b c d e", "budget": {"ratio": 0.01}}), 422, "budget_too_small")


def test_options_the_method_does_not_take_or_the_server_blocks(http):
    assert_error(http.post("/v1/compress", json={"text": "a b", "budget": {"tokens": 1}, "options": {"colour": "red"}}),
                 400, "invalid_option")
    assert_error(http.post("/v1/compress", json={"text": "a b", "budget": {"tokens": 1}, "options": {"keep": "middle"}}),
                 400, "invalid_input")
    assert_error(http.post("/v1/compress", json={"text": "a b", "budget": {"tokens": 1}, "options": {"model": "/etc"}}),
                 400, "option_not_allowed")
    body = {"text": "a b", "budget": {"tokens": 1}, "options": {"protection": {"colour": True}}}
    assert_error(http.post("/v1/compress", json=body), 400, "invalid_option")


def test_tokenizer_not_enabled(http):
    body = {"text": "a b c", "budget": {"tokens": 2, "tokenizer": "/etc/passwd"}}
    assert_error(http.post("/v1/compress", json=body), 400, "tokenizer_not_allowed")


def test_oversized_body(http):
    big = {"text": "x " * 100_000, "budget": {"tokens": 5}}
    error = assert_error(http.post("/v1/compress", json=big), 413, "body_too_large")
    assert str(64 * 1024) in error["message"]
    # Without a Content-Length (chunked upload) the limit still holds.
    def chunks():
        for _ in range(100):
            yield b"x" * 4096
    assert_error(http.post(CHAT, content=chunks(), headers={"content-type": "application/json"}), 413, "body_too_large")


def test_unknown_paths_and_methods(http):
    assert_error(http.get("/nope"), 404, "not_found")
    assert_error(http.get("/v1/compress"), 405, "method_not_allowed")


def test_duplicate_document_ids(http):
    body = {"documents": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}], "budget": {"tokens": 1}}
    assert_error(http.post("/v1/compress", json=body), 400, "invalid_input")


def test_compress_api_returns_the_result(http):
    docs = [{"text": "Alpha beta gamma. Delta epsilon.", "id": "d1", "metadata": {"source": "s"}},
            {"text": "Zeta eta theta.", "metadata": {"n": 1}}]
    body = {"documents": docs, "query": "gamma?", "method": "truncate", "options": {"keep": "head"},
            "budget": {"tokens": 4}}
    result = http.post("/v1/compress", json=body).json()
    assert result["compressed_tokens"] <= 4 < result["original_tokens"]
    assert result["method"] == "truncate" and result["budget_tokens"] == 4 and result["tokenizer"] == "cl100k_base"
    assert result["ratio"] == pytest.approx(result["compressed_tokens"] / result["original_tokens"])
    assert result["documents"][0]["id"] == "d1" and result["documents"][0]["metadata"] == {"source": "s"}
    for span in result["kept"]:
        source = docs[0]["text"] if span["doc_id"] == "d1" else docs[1]["text"]
        assert source[span["start"]:span["end"]] in result["text"]
    # Text under budget comes back unchanged.
    same = http.post("/v1/compress", json={"text": "short", "budget": {"tokens": 50}}).json()
    assert same["text"] == "short" and same["info"] == {"unchanged": True}


def test_compress_api_with_messages_applies_the_policy(http):
    context = "Sentence about rivers and mills. " * 100
    messages = [{"role": "system", "content": "Be brief."}, {"role": "tool", "content": context},
                {"role": "user", "content": "What about mills?"}]
    body = {"messages": messages, "budget": {"tokens": 30}, "policy": {"min_tokens": 10}}
    result = http.post("/v1/compress", json=body).json()
    out = result["messages"]
    assert out[0] == messages[0] and out[2] == messages[2]
    assert context.startswith(out[1]["content"]) and len(out[1]["content"]) < len(context)
    assert result["compressed_tokens"] <= 30
