"""Teacher labels for the distilled token classifier: word importance from SmolLM2.

The scores are PerplexityCompressor's word scores, computed once per text: self-information
(Selective Context / LLMLingua) for the task-agnostic target, plus LongLLMLingua's
question-conditioned contrast for the question-aware one. Targets are soft: a word's percentile
rank within its text (keeping words with target >= 1 - r is keep rate r). Human evidence (answer
spans 1.0, supporting sentences 0.8) is averaged into the question-aware target.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np

from ctxzip.scores import standardize
from ctxzip.segment import word_spans
from ctxzip.token_scoring.aggregate import token_units, unit_mean
from ctxzip.token_scoring.causal import token_surprisal
from ctxzip.train.lingua_data import TrainingText


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """0 for the lowest value, 1 for the highest; ties share their mean rank."""
    if len(values) < 2:
        return np.ones(len(values))
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    # average tied ranks so equal scores get equal targets
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ranks = np.bincount(inverse, weights=ranks) / counts
    return ranks[inverse] / (len(values) - 1)


def evidence_target(starts: np.ndarray, ends: np.ndarray, evidence) -> np.ndarray:
    """Per word, the highest evidence target among spans it overlaps (0 if none)."""
    target = np.zeros(len(starts))
    for s, e, value in evidence:
        overlap = (starts < e) & (ends > s)
        target[overlap] = np.maximum(target[overlap], value)
    return target


class Teacher:
    """SmolLM2 scoring words of a text, with and without the question before it."""

    def __init__(self, model: str = "smollm2", device: str = "auto") -> None:
        from ctxzip.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(model, device)
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        self.prefix = np.array([start], dtype=np.int64)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoding = self.tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
        offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        return np.asarray(encoding.ids, dtype=np.int64), offsets[:, 0]

    def label(self, item: TrainingText) -> dict:
        starts, ends = word_spans(item.text)
        ids, token_starts = self.encode(item.text)
        owner = token_units(token_starts, starts, ends)
        plain, _ = token_surprisal(self.model, ids, self.prefix)
        information = unit_mean(plain, owner, len(starts))
        record = {
            "id": item.id, "source": item.source, "text": item.text, "query": item.query,
            "starts": starts.tolist(), "ends": ends.tolist(),
            "agnostic": np.round(percentile_rank(information), 3).tolist(), "question": None,
        }
        if item.query:
            query_ids, _ = self.encode(item.query)
            conditioned_prefix = np.concatenate([self.prefix, query_ids, self.encode("\n\n")[0]])
            conditioned, _ = token_surprisal(self.model, ids, conditioned_prefix)
            contrast = unit_mean(plain - conditioned, owner, len(starts))
            teacher = percentile_rank(standardize(information) + standardize(contrast))
            human = evidence_target(starts, ends, item.evidence)
            record["question"] = np.round(0.5 * teacher + 0.5 * human, 3).tolist()
        return record


def write_labels(texts: list[TrainingText], path: Path, model: str = "smollm2", every: int = 20) -> int:
    """Append labels for texts not yet in `path`, so an interrupted run resumes where it stopped.

    Records go out in small gzip members (one per `every` texts): a killed run loses at most the
    member it was writing, and `read_labels` stops cleanly before it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {r["id"] for r in read_labels(path)} if path.exists() else set()
    todo = [t for t in texts if t.id not in done]
    teacher = Teacher(model) if todo else None
    started = time.time()
    for first in range(0, len(todo), every):
        lines = [json.dumps(teacher.label(item), ensure_ascii=False) + "\n" for item in todo[first : first + every]]
        with gzip.open(path, "at", encoding="utf-8") as out:
            out.writelines(lines)
        print(f"labelled {first + len(lines)}/{len(todo)} in {time.time() - started:.0f}s", flush=True)
    return len(done) + len(todo)


def read_labels(path: Path) -> list[dict]:
    """All complete records; a member cut short by a killed run ends the list instead of failing."""
    records = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        try:
            for line in f:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break
        except EOFError:
            pass
    return records
