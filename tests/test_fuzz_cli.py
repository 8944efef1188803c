"""Fuzzing the command line: any arguments and any input end in a result or a one-line error, never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctxzip.cli import app
from tests.support.fuzz import examples, text

RUNNER = CliRunner()
FUZZ = settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
# Methods that need no model keep this quick; the model methods share these code paths in the CLI.
METHODS = st.sampled_from(["truncate", "truncate", "random", "random", "extractive", "no-such-method", ""])


def mostly(good, bad):
    """`good` nine times in ten."""
    return st.integers(1, 10).flatmap(lambda k: bad if k == 7 else good)


SIZES = mostly(st.one_of(st.tuples(st.just("--budget"), st.integers(1, 300).map(str)),
                         st.tuples(st.just("--ratio"), st.floats(0.05, 0.95).map(str))),
               st.tuples(st.sampled_from(["--budget", "--ratio"]),
                         st.sampled_from(["", "x", "-3", "0", "1e9", "nan", "2.5"])))
RAW = mostly(st.just(b""), st.sampled_from([b"\x00\x01", b"\xff\xfe"]))
OPTIONS = mostly(st.just([]), st.lists(st.one_of(st.sampled_from(["keep=tail", "keep=middle", "unit=sentence", "seed=3", "=", "colour=red",
                                               "scorer=bm25", "protection={}", "deduplicate=false"]),
                             st.text(max_size=12)), max_size=3))


def run(args: list[str], stdin: bytes):
    result = RUNNER.invoke(app, args, input=stdin)
    output = result.stdout + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in output, output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 2), (result.exit_code, output)
    return result


@FUZZ
@given(method=METHODS, size=SIZES, options=OPTIONS, body=text, query=st.one_of(st.none(), text), as_json=st.booleans(),
       raw=RAW)
def test_compress_never_shows_a_traceback(method, size, options, body, query, as_json, raw):
    args = ["compress", "-", "--method", method, *size, "--quiet"]
    for option in options:
        args += ["-o", option]
    if query is not None:
        args += ["--query", query]
    if as_json:
        args.append("--json")
    stdin = body.encode("utf-8", "surrogatepass") + raw
    result = run(args, stdin)
    event(f"exit {result.exit_code}" + (f": {result.output.strip()[:48]}" if result.exit_code else ""))
    if result.exit_code == 0 and as_json:
        data = json.loads(result.stdout)
        assert data["compressed_tokens"] <= data["budget_tokens"]
    if result.exit_code == 2:
        assert result.output.strip().count("\n") == 0 or "Usage" in result.output  # one line (or typer's usage)


@FUZZ
@given(command=st.sampled_from([["methods"], ["models", "--json"], ["compress", "/no/such/file", "-b", "5"],
                                ["compress", "-", "--budget", "5", "--ratio", "0.5"], ["nonsense"], ["compress"]]))
def test_other_commands_and_bad_usage(command):
    event(" ".join(command[:1]))
    run(command, b"some text")
