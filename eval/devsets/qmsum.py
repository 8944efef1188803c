"""QMSum: query-focused selection from a whole meeting transcript.

One document per meeting: one line `speaker: content` per turn, joined with newlines. Each specific
query's gold is its relevant turn ranges (inclusive turn indices), as character spans of those lines;
the metric is the share of those characters kept (gold-span recall). General queries ("summarise the
meeting") have no gold turns and are left out.
"""

from __future__ import annotations

import functools
import json

from ctxzip.document import Document
from eval import datasets
from eval.devsets import DevExample, part_of


@functools.lru_cache(maxsize=1)
def _meetings() -> list[dict]:
    with open(datasets.data_dir() / "qmsum" / "val.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def meeting_key(meeting: dict) -> str:
    """A stable key for the meeting (the file has no ids): the text of its first 20 turns."""
    return "\n".join(f"{t['speaker']}: {t['content']}" for t in meeting["meeting_transcripts"][:20])


def transcript(meeting: dict) -> tuple[str, list[tuple[int, int]]]:
    """The document text and the (start, end) of each turn's line in it."""
    lines = [f"{t['speaker']}: {t['content'].strip()}" for t in meeting["meeting_transcripts"]]
    spans, position = [], 0
    for line in lines:
        spans.append((position, position + len(line)))
        position += len(line) + 1
    return "\n".join(lines), spans


def load_qmsum(part: str) -> list[DevExample]:
    out = []
    for m, meeting in enumerate(_meetings()):
        key = meeting_key(meeting)
        if part_of(datasets.bucket(key), 4, 6) != part:
            continue
        text, turns = transcript(meeting)
        doc_id = f"meeting-{m}"
        document = Document(text, doc_id)
        for q, query in enumerate(meeting["specific_query_list"]):
            gold = []
            for first, last in query["relevant_text_span"]:
                first, last = int(first), min(int(last), len(turns) - 1)
                gold += [(doc_id, *turns[t]) for t in range(first, last + 1)]
            if gold:
                out.append(DevExample(f"qmsum-{m}-{q}", "qmsum", query["query"], [document], gold_spans=gold,
                                      meta={"meeting": m, "turns": len(turns), "reference": query["answer"]}))
    return out
