"""The ten findings of the hardening issue, each as the input that failed (issue "Hardening", items 1-10).

Items handled in their own areas are tested there too: the sidecar's surrogates and JSON tool messages
(tests/test_service_*.py), the code method's language detection (tests/test_code_*.py), KV streams.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ctxzip import Budget, create_compressor
from ctxzip.cli import app
from ctxzip.document import rebuild
from ctxzip.errors import BudgetTooSmallError

RUNNER = CliRunner()


@pytest.mark.parametrize("text", ["   \n\t  " * 30, "!!! ??? ... --- " * 30, "the and of to a in is it " * 30, "🙂🚀🎉 👍🏽 " * 30])
def test_1_extractive_on_text_without_words_does_not_crash(text):
    result = create_compressor("extractive", scorer="bm25").compress(text * 3, "what happened?", Budget(ratio=0.5))
    assert result.compressed_tokens <= result.budget_tokens


def test_2_code_on_json_is_not_taken_for_python_and_keeps_content():
    data = json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(60)], indent=2)
    result = create_compressor("code", scorer="lexical").compress([{"text": data, "id": "data.json"}], "item 7",
                                                                  Budget(ratio=0.3))
    assert result.text.strip() and result.compressed_tokens <= result.budget_tokens


def test_3_code_placeholders_are_reported_so_the_text_rebuilds():
    source = "\n\n".join(f"def f{i}(x):\n    y = x + {i}\n    z = y * 2\n    return z\n" for i in range(40))
    documents = [{"text": source, "id": "m.py"}]
    result = create_compressor("code", scorer="lexical").compress(documents, "def f3(x):", Budget(ratio=0.3))
    assert any("..." in i.text for i in result.inserted)
    from ctxzip import Document

    assert rebuild([Document(source, "m.py")], result.kept, result.inserted)["m.py"] == result.documents[0].text


@pytest.mark.parametrize("method", ["truncate", "random"])
def test_4_whitespace_only_input_reports_no_kept_span(method):
    result = create_compressor(method).compress(" \n " * 40, None, Budget(tokens=1))
    assert result.text == "" and result.documents == [] and result.kept == []


def ctxzip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctxzip", *args], capture_output=True, text=True, timeout=300)


def test_7_corpus_into_a_path_under_a_file_is_one_line(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "some words here"}\n')
    (tmp_path / "file").write_text("x")
    result = ctxzip("corpus", str(source), str(tmp_path / "file" / "out"), "-m", "truncate", "-b", "2", "--no-progress")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Not a directory" in result.stderr


def test_8_a_budget_too_small_for_any_sentence_is_an_error_not_an_empty_output():
    with pytest.raises(BudgetTooSmallError, match="cannot hold any unit"):
        create_compressor("extractive", scorer="bm25").compress("The cat sat on the mat. " * 10, "cat", Budget(tokens=1))
    result = RUNNER.invoke(app, ["compress", "-", "-m", "extractive", "-b", "1", "-o", "scorer=bm25"],
                           input="The cat sat on the mat. " * 10)
    assert result.exit_code == 2 and "cannot hold any unit" in result.output


def test_8_a_corpus_job_whose_records_all_fail_exits_non_zero_with_the_reason(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "some words here"}\n{"id": 2, "text": "more words"}\n')
    result = ctxzip("corpus", str(source), str(tmp_path / "out"), "-m", "truncate", "-b", "2", "--text-field", "txt",
                    "--no-progress")
    assert result.returncode == 2 and "every record failed" in result.stderr and "missing field 'txt'" in result.stderr


def test_10_model_loading_is_quiet_unless_verbose(tmp_path):
    code = ("from ctxzip.models import quiet_loading, resolve_model_path\n"
            "from transformers import AutoModelForTokenClassification\n"
            "with quiet_loading():\n"
            "    AutoModelForTokenClassification.from_pretrained(resolve_model_path('minilm'), num_labels=2)\n")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "LOAD REPORT" not in quiet.stderr and "Loading weights" not in quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "CTXZIP_VERBOSE": "1"})
    assert "LOAD REPORT" in loud.stderr + loud.stdout


def test_7_kv_encode_into_a_missing_folder_is_one_line_before_the_model_runs(tmp_path):
    (tmp_path / "t.txt").write_text("some text to prefill")
    result = ctxzip("kv", "encode", str(tmp_path / "t.txt"), "-o", str(tmp_path / "missing" / "x.czkv"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: no such folder for --output: {tmp_path / 'missing'}"


def test_8_the_sidecar_never_sends_a_marked_part_emptied_as_compressed():
    from fastapi.testclient import TestClient

    from ctxzip_service import ServiceSettings, create_app
    from tests.support.upstream import RecordingUpstream, UvicornThread

    recorder = RecordingUpstream()
    context = "The river Mill flows north. It powers three mills. Fishermen sell trout at dawn. " * 120
    with UvicornThread(recorder.app()) as upstream:
        app = create_app(ServiceSettings(upstream=upstream.url + "/v1", default_method="truncate"))
        with TestClient(app) as client:
            for budget in ({"tokens": 40}, {"ratio": 0.01}, {"tokens": 3}):
                body = {"model": "m", "ctxzip": {"budget": budget}, "messages": [{"role": "user", "content": [
                    {"type": "text", "text": context, "ctxzip_compress": True}, {"type": "text", "text": "How many mills?"}]}]}
                sent_before = len(recorder.received)
                response = client.post("/v1/chat/completions", json=body)
                if response.status_code == 200:
                    sent = recorder.received[-1]["messages"][0]["content"][0]["text"]
                    assert sent.strip() and response.headers["x-ctxzip-status"] == "compressed"
                else:  # a budget the question alone fills is the caller's error, said so
                    assert response.status_code == 422 and len(recorder.received) == sent_before
                    assert response.json()["error"]["code"] == "budget_too_small"


def test_5_a_lone_surrogate_in_a_marked_part_fails_open_and_the_connection_survives():
    import httpx

    from ctxzip_service import ServiceSettings, create_app
    from tests.support.upstream import RecordingUpstream, UvicornThread

    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as upstream:
        with UvicornThread(create_app(ServiceSettings(upstream=upstream.url + "/v1", default_method="truncate"))) as sidecar:
            with httpx.Client(base_url=sidecar.url, timeout=30) as client:
                part = {"type": "text", "text": "context \ud800 " * 300, "ctxzip_compress": True}
                body = json.dumps({"model": "m", "messages": [{"role": "user", "content": [part]}]})  # \\ud800 escape
                response = client.post("/v1/chat/completions", content=body.encode(),
                                       headers={"content-type": "application/json"})
                assert response.status_code < 500, response.text
                assert client.get("/healthz").status_code == 200  # same keep-alive connection


def test_5_compress_route_refuses_messages_with_a_lone_surrogate_and_the_connection_survives():
    """Found by `make fuzz`: /v1/compress answered chat messages holding a lone surrogate with 500 (its JSON
    answer cannot carry one) and dropped the connection."""
    import httpx

    from ctxzip_service import ServiceSettings, create_app
    from tests.support.upstream import UvicornThread

    with UvicornThread(create_app(ServiceSettings(upstream="http://127.0.0.1:9/v1", default_method="truncate"))) as sidecar:
        with httpx.Client(base_url=sidecar.url, timeout=30) as client:
            for content in ("context \ud800 " * 50, [{"type": "text", "text": "a \udfff b"}]):
                body = json.dumps({"messages": [{"role": "user", "content": content}], "budget": {"tokens": 20},
                                   "policy": {"min_tokens": 1}})  # the \\ud800 escape, as a JSON client sends it
                response = client.post("/v1/compress", content=body.encode(), headers={"content-type": "application/json"})
                assert response.status_code == 400, response.text
                assert response.json()["error"]["code"] == "invalid_input" and "surrogate" in response.text
                assert client.get("/healthz").status_code == 200  # same keep-alive connection


def test_8_compress_route_says_when_messages_cannot_fit_their_token_budget():
    """Found by `make fuzz`: a system message (never compressed) over a 1-token budget came back 200 over budget."""
    from fastapi.testclient import TestClient

    from ctxzip_service import ServiceSettings, create_app

    with TestClient(create_app(ServiceSettings(upstream="http://127.0.0.1:9/v1", default_method="truncate"))) as client:
        body = {"messages": [{"role": "system", "content": "你好，世界。"}], "budget": {"tokens": 1},
                "policy": {"min_tokens": 1}}
        response = client.post("/v1/compress", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "budget_too_small"
        fits = client.post("/v1/compress", json={**body, "budget": {"tokens": 50}})
        assert fits.status_code == 200 and fits.json()["compressed_tokens"] <= 50


def test_protection_option_from_json_or_the_cli_is_a_protection_or_a_clear_error():
    """Found by `make fuzz`: `-o protection=...` reached the solver as a dict (AttributeError traceback)."""
    from ctxzip.errors import InvalidOptionError

    kept = create_compressor("truncate", protection={"numbers": True}).compress("a 1234 b c d e f", budget=2)
    assert kept.compressed_tokens <= 2
    for bad in ("numbers", {"digits": True}, 3):
        with pytest.raises(InvalidOptionError):
            create_compressor("truncate", protection=bad)
    result = CliRunner().invoke(app, ["compress", "-", "--budget", "3", "-o", "protection=x"], input="你好，世界。")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_6_a_long_json_tool_message_stays_json():
    import httpx

    from ctxzip_service import ServiceSettings, create_app
    from tests.support.upstream import RecordingUpstream, UvicornThread

    rows = [{"id": i, "title": f"Result number {i}", "snippet": "lorem ipsum dolor sit amet " * 8} for i in range(80)]
    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as upstream:
        with UvicornThread(create_app(ServiceSettings(upstream=upstream.url + "/v1", default_method="extractive"))) as sidecar:
            with httpx.Client(base_url=sidecar.url, timeout=120) as client:
                messages = [{"role": "user", "content": "Find result 42"},
                            {"role": "assistant", "content": None,
                             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": "{}"}}]},
                            {"role": "tool", "tool_call_id": "c1", "content": json.dumps(rows)},
                            {"role": "user", "content": "What is the title of result 42?"}]
                response = client.post("/v1/chat/completions", json={"model": "m", "messages": messages,
                                                                     "ctxzip": {"budget": {"ratio": 0.3}}})
                assert response.status_code == 200
                sent = recorder.received[-1]["messages"][2]["content"]
                assert len(sent) < len(messages[2]["content"])
                json.loads(sent)  # still JSON
