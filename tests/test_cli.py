"""The CLI in a real subprocess: JSON output, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest


def ctxzip(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "ctxzip", *args], input=stdin, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "doc.txt"
    path.write_text("The Eiffel Tower is in Paris. It was finished in 1889. " * 40, encoding="utf-8")
    return path


def test_compress_json(text_file):
    out = ctxzip("compress", str(text_file), "--method", "truncate", "--budget", "100", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["compressed_tokens"] <= 100 < data["original_tokens"]
    assert data["method"] == "truncate" and isinstance(data["ratio"], float)
    assert data["kept"][0]["doc_id"] == "0"


def test_compress_stdin_and_ratio():
    out = ctxzip("compress", "-", "--method", "random", "--ratio", "0.5", stdin=("alpha beta gamma " * 50).encode())
    assert out.returncode == 0, out.stderr
    assert "random" in out.stderr.decode()


def test_compress_documents_as_json_lines(tmp_path):
    lines = [json.dumps({"text": "alpha beta gamma delta " * 30, "id": f"d{i}", "metadata": {"n": i}}) for i in range(3)]
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    out = ctxzip("compress", str(path), "--docs", "--method", "truncate", "--budget", "40", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["compressed_tokens"] <= 40
    assert data["documents"][0]["id"] == "d0" and data["documents"][0]["metadata"] == {"n": 0}


@pytest.mark.parametrize(
    "args",
    [
        ["compress", "/no/such/file", "--method", "truncate", "--budget", "10"],
        ["compress", "{file}", "--method", "truncate", "--budget", "0"],
        ["compress", "{file}", "--method", "truncate", "--budget", "-3"],
        ["compress", "{file}", "--method", "truncate", "--budget", "10", "--ratio", "0.5"],
        ["compress", "{file}", "--method", "truncate"],
        ["compress", "{file}", "--method", "nonexistent", "--budget", "10"],
        ["compress", "{file}", "--method", "truncate", "--budget", "10", "--tokenizer", "/no/such/tokenizer"],
        ["compress", "{binary}", "--method", "truncate", "--budget", "10"],
        ["compress", "{file}", "--method", "truncate", "--budget", "10", "--option", "keep=middle"],
        ["compress", "{file}", "--method", "truncate", "--budget", "10", "--option", "colour=red"],
        ["compress", "{file}", "--docs", "--method", "truncate", "--budget", "10"],
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, text_file, tmp_path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x7fELF\x00\x01\x02binary")
    args = [a.format(file=text_file, binary=binary) for a in args]
    out = ctxzip(*args)
    stderr = out.stderr.decode().strip()
    assert out.returncode != 0
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) == 1, stderr


def test_models_and_methods_list():
    out = ctxzip("models", "--json")
    assert out.returncode == 0
    rows = json.loads(out.stdout)
    assert {"minilm", "smollm2"} <= {r["alias"] for r in rows}
    assert all(r["licence"] for r in rows)
    methods = ctxzip("methods").stdout.decode().split()
    assert "truncate" in methods and "random" in methods
