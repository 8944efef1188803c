"""The LlamaIndex example in docs/integrations.md runs as written."""

from __future__ import annotations

import re

from test_langchain_docs import DOC, python_blocks


def test_llama_index_example_runs_as_written(capsys):
    [block] = python_blocks("LlamaIndex")
    exec(compile(block, str(DOC), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(re.match(r"^[\w ]+ \[\[\d+, \d+\]", line) for line in lines)  # title, spans, text
