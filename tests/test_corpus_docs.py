"""The examples in docs/corpus.md run as written."""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from ctxzip.corpus.shards import read_output

DOC = Path(__file__).resolve().parents[1] / "docs" / "corpus.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_python_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    [block] = blocks("python")
    exec(compile(block, str(DOC), "exec"), {})
    counts, first = capsys.readouterr().out.splitlines()
    records, shards, saved = map(int, counts.split())
    assert (records, shards) == (100, 4) and saved > 0
    assert first.startswith("0 Note 0.")


def test_command_example_runs_as_written(tmp_path):
    paragraphs = [{"id": f"p{i}", "question": "Which room moved?",
                   "text": f"Paragraph {i}. Room {i} moved to the afternoon. The slides are on the shared drive. "
                           "Lunch is at noon in the big hall."} for i in range(6)]
    with gzip.open(tmp_path / "paragraphs.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in paragraphs)
    [command] = [line for line in blocks("bash")[0].splitlines() if line.startswith("ctxzip ")]
    argv = [sys.executable, "-m", "ctxzip", *shlex.split(command)[1:]]
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == 6
    out = list(read_output(tmp_path / "compressed"))
    assert [r["id"] for r in out] == [p["id"] for p in paragraphs]
    assert all(r["ctxzip"]["compressed_tokens"] <= r["ctxzip"]["original_tokens"] // 2 for r in out)
