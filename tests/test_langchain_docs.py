"""The examples in docs/integrations.md run as written (LangChain section here, LlamaIndex in its own test)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "integrations.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of one `## section` of the page."""
    text = DOC.read_text(encoding="utf-8")
    body = re.split(r"^## ", text, flags=re.M)
    part = next(p for p in body if p.startswith(section))
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


def test_langchain_examples_run_as_written(capsys):
    blocks = python_blocks("LangChain")
    assert len(blocks) == 3
    for block in blocks:  # each on its own, as a reader would copy it
        exec(compile(block, str(DOC), "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    retrieved = [line for line in lines if " | " in line]
    assert retrieved and all(re.match(r"^[\w ]+ \[\[\d+, \d+\]", line) for line in retrieved)  # title, spans, text
    assert "Chief of Protocol" in lines and "Room 7 moved to the afternoon." in lines  # the chains' fake answers
    kept = next(line for line in lines if line.endswith("tokens of context kept"))
    assert 0 < int(kept.split()[0]) <= 120
