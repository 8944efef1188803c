"""Training examples for the context head: a mix of sets, each sentence labelled, train parts only.

Sources (parts and retrieval in `eval.devsets`; HotpotQA distractor split in `eval.datasets`):

| source | ordered | a sentence is positive when |
|---|---|---|
| hotpot-bm25, hotpot-minilm (open retrieval, rank order) | yes | it contains the answer (1.0) or is a gold supporting sentence (0.7) |
| hotpot-shuffled (open retrieval, passages shuffled) | no | same |
| squad-chunks (overlapping chunks, rank order) | yes | it contains a gold answer |
| qmsum (one transcript) | one document: no rank | at least half of it lies in gold turns |
| hotpot-distractor (10 shuffled paragraphs) | no | as hotpot-bm25 |

Shuffled copies teach the unranked regime on the same passages, so `ordered=False` means "no rank
evidence", not "HotpotQA distractor".
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from ctxzip.document import Document
from ctxzip.relevance.base import ScoringTask

# Soft target of a supporting sentence without the answer: needed for the reasoning, but the answer
# string (what the metric asks to keep) is in another sentence.
SUPPORTING_TARGET = 0.7
SOURCES = ("hotpot-bm25", "hotpot-minilm", "hotpot-shuffled", "squad-chunks", "qmsum", "hotpot-distractor")


@dataclass
class LabelledTask:
    source: str
    task: ScoringTask
    labels: np.ndarray  # 1.0 = keep
    answers: list[str]  # for the answer-recall dev metric ([] on span sets)
    gold_spans: list[tuple[int, int, int]]  # (doc index, start, end) for the span-recall dev metric


def _normalised(text: str) -> str:
    from eval.metrics import normalize_answer

    return f" {normalize_answer(text)} "


def overlap_labels(task: ScoringTask, spans: list[tuple[int, int, int]], share: float = 0.5) -> np.ndarray:
    """1 for a sentence that covers at least `share` of a gold span, or lies at least `share` inside gold spans."""
    labels = np.zeros(len(task), dtype=np.float32)
    length = np.maximum(task.sentence_end - task.sentence_start, 1)
    inside = np.zeros(len(task))
    for d, start, end in spans:
        rows = np.flatnonzero(task.sentence_doc == d)
        overlap = np.maximum(0, np.minimum(task.sentence_end[rows], end) - np.maximum(task.sentence_start[rows], start))
        labels[rows[overlap >= share * max(1, end - start)]] = 1.0
        inside[rows] += overlap
    labels[inside / length >= share] = 1.0
    return labels


def answer_labels(task: ScoringTask, answers: list[str]) -> np.ndarray:
    wanted = [_normalised(a) for a in answers if _normalised(a).strip()]
    return np.array([any(a in _normalised(s) for a in wanted) for s in task.sentences], dtype=np.float32)


def make_task(documents: list[Document], query: str, ordered: bool) -> ScoringTask:
    from ctxzip.compressors.extractive import sentence_task

    return sentence_task(documents, query, ordered)


def _spans_by_index(documents: list[Document], spans) -> list[tuple[int, int, int]]:
    index = {d.id: i for i, d in enumerate(documents)}
    return [(index[d], s, e) for d, s, e in spans if d in index]


def from_devset(example, source: str, ordered: bool, rng: random.Random | None = None) -> LabelledTask:
    """A labelled task from an `eval.devsets.DevExample`; with `rng`, its passages are shuffled."""
    documents = list(example.documents)
    if rng is not None:
        rng.shuffle(documents)
    task = make_task(documents, example.question, ordered)
    if example.gold_spans:
        gold = _spans_by_index(documents, example.gold_spans)
        return LabelledTask(source, task, overlap_labels(task, gold), [], gold)
    labels = answer_labels(task, example.answers)
    supporting = _spans_by_index(documents, example.meta.get("supporting_spans", []))
    if supporting:
        labels = np.maximum(labels, SUPPORTING_TARGET * overlap_labels(task, supporting))
    return LabelledTask(source, task, labels, list(example.answers), [])


def hotpot_distractor(count: int, seed: int) -> list[LabelledTask]:
    from eval.datasets import load_hotpotqa

    examples = load_hotpotqa("train")
    random.Random(seed).shuffle(examples)
    out = []
    for ex in examples:
        if ex.answer.strip().lower() in ("yes", "no"):
            continue
        documents = ex.documents()
        task = make_task(documents, ex.question, ordered=False)
        labels = np.maximum(answer_labels(task, [ex.answer]),
                            SUPPORTING_TARGET * overlap_labels(task, _spans_by_index(documents, ex.supporting_spans())))
        out.append(LabelledTask("hotpot-distractor", task, labels, [ex.answer], []))
        if len(out) >= count:
            break
    return out


def collect(part: str, per_set: int, seed: int, sources: tuple[str, ...] = SOURCES) -> list[LabelledTask]:
    """Labelled tasks of `part` ("train" or "dev"), at most `per_set` per source (QMSum: all of its part)."""
    from eval.devsets import load_devset

    rng = random.Random(seed)
    out: list[LabelledTask] = []
    for source in sources:
        if source == "hotpot-distractor":
            if part == "train":  # the distractor split has no dev part; its eval split is never read
                out += hotpot_distractor(per_set, seed)
            continue
        name = "hotpot-bm25" if source == "hotpot-shuffled" else source
        examples = load_devset(name, part, limit=per_set, seed=seed + (1 if source == "hotpot-shuffled" else 0))
        shuffle = rng if source == "hotpot-shuffled" else None
        ordered = source != "hotpot-shuffled"
        out += [from_devset(ex, source, ordered, shuffle) for ex in examples]
    return out
