"""Learned context-aware scorer: the probability that a sentence helps answer the query, judged
with its paragraph in view (see `sentence_model`). Long documents are cut into windows of
consecutive sentences, each read as a paragraph; windows of all queries share batched forwards."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ctxzip.batching import batch_by_length
from ctxzip.relevance.base import ScoringTask, SentenceScorer

# A window holds whole sentences up to about this many characters (~200 MiniLM tokens).
WINDOW_CHARS = 900


@functools.lru_cache(maxsize=4)
def _load(folder: str | None, device: str):
    from ctxzip.models import load_tokenizer, resolve_device, resolve_dtype
    from ctxzip.relevance.sentence_model import load_trained

    model, config = load_trained(folder)
    device = resolve_device(device)
    model = model.to(device=device, dtype=resolve_dtype(device))
    return model, load_tokenizer(config.get("base", "minilm")), config, device


def sentence_windows(task: ScoringTask, window_chars: int = WINDOW_CHARS) -> list[np.ndarray]:
    """Groups of consecutive sentence indices of one document each, at most `window_chars` long."""
    windows: list[np.ndarray] = []
    if not len(task):
        return windows
    lengths = task.sentence_end - task.sentence_start
    boundaries = np.flatnonzero(np.diff(task.sentence_doc)) + 1
    for rows in np.split(np.arange(len(task)), boundaries):
        # Cut where the running length passes a multiple of window_chars (vectorised greedy packing).
        group = np.cumsum(lengths[rows]) // window_chars
        cuts = np.flatnonzero(np.diff(group)) + 1
        windows.extend(w for w in np.split(rows, cuts) if len(w))
    return windows


@dataclass
class ContextClassifierScorer(SentenceScorer):
    """model: a folder with trained weights (default: the shipped `sentence-minilm-v1`)."""

    model: str | None = None
    device: str = "auto"
    batch_size: int = 32
    max_length: int = 256
    name = "classifier"
    probabilistic = True

    @property
    def model_name(self) -> str:
        return self.model or "ctxzip/sentence-minilm-v1"

    def score(self, tasks: list[ScoringTask], queries: list[str], prepared) -> list[np.ndarray]:
        import torch

        from ctxzip.relevance.sentence_model import encode_paragraphs

        model, tokenizer, _, device = _load(self.model, self.device)
        jobs = []  # (task index, sentence rows, query, title, window text, spans relative to the window)
        for t, (task, query) in enumerate(zip(tasks, queries)):
            for rows in sentence_windows(task):
                doc = int(task.sentence_doc[rows[0]])
                begin, end = int(task.sentence_start[rows[0]]), int(task.sentence_end[rows[-1]])
                spans = np.stack([task.sentence_start[rows], task.sentence_end[rows]], axis=1) - begin
                jobs.append((t, rows, query, task.doc_titles[doc], task.doc_texts[doc][begin:end], spans))
        scores = [np.zeros(len(task)) for task in tasks]
        for rows in batch_by_length([len(job[4]) for job in jobs], max_batch_size=self.batch_size):
            batch = [jobs[j] for j in rows.tolist()]
            tensors, pool, has_tokens = encode_paragraphs(
                tokenizer, [b[2] for b in batch], [b[3] for b in batch], [b[4] for b in batch],
                [b[5] for b in batch], max_length=self.max_length,
            )
            with torch.inference_mode():
                logits = model(**{k: v.to(device) for k, v in tensors.items()}, pool=pool.to(device))
            probabilities = torch.sigmoid(logits.float()).cpu().numpy()
            # A sentence cut off by truncation gets no tokens; it scores 0 rather than a guess.
            probabilities = np.where(has_tokens, probabilities, 0.0)
            for (t, rows, *_), p in zip(batch, probabilities):
                scores[t][rows] = p[: len(rows)]
        return scores
