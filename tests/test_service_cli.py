"""`ctxzip serve` as an operator starts it: a subprocess on a free port, settings from flags and env."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.support.upstream import RecordingUpstream, UvicornThread, free_socket, wait_until_ready

pytestmark = pytest.mark.timeout(120)


def test_serve_runs_uvicorn_with_flags_and_env_and_logs_json():
    recorder = RecordingUpstream()
    with UvicornThread(recorder.app()) as upstream:
        sock = free_socket()
        port = sock.getsockname()[1]
        sock.close()
        env = {**os.environ, "CTXZIP_AUTH_TOKEN": "tok-from-env-42", "CTXZIP_MIN_TOKENS": "5"}
        process = subprocess.Popen(
            [sys.executable, "-m", "ctxzip", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--upstream", upstream.url + "/v1", "--method", "truncate", "--ratio", "0.5"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_ready(process, url)
            assert httpx.post(url + "/v1/compress", json={"text": "a b c", "budget": {"tokens": 2}}).status_code == 401
            body = {"model": "m", "messages": [{"role": "tool", "content": "word " * 40},
                                               {"role": "user", "content": "question?"}]}
            response = httpx.post(url + "/v1/chat/completions", json=body,
                                  headers={"x-ctxzip-key": "tok-from-env-42", "authorization": "Bearer sk-caller"})
            assert response.status_code == 200
            assert response.headers["x-ctxzip-method"] == "truncate"  # --method
            sent = recorder.received[-1]["messages"][0]["content"]
            assert len(sent) < len("word " * 40)  # --ratio 0.5 with CTXZIP_MIN_TOKENS=5
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("status") == 401 for line in lines)
    assert any(line.get("event") == "started" for line in lines)
    assert "tok-from-env-42" not in stderr.decode() and "sk-caller" not in stderr.decode()


def test_serve_rejects_bad_settings():
    result = subprocess.run([sys.executable, "-m", "ctxzip", "serve", "--fail-mode", "sideways"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "fail_mode" in result.stderr
