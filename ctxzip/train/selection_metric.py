"""What training optimises for, measured the way `eval.quality` measures it, but fast enough for every
epoch: sentences taken best first after the default de-dup while they fit the budget (the solver's
greedy fill), then answer recall (a gold answer string in a kept sentence) or gold-span recall.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.redundancy import duplicate_mask
from ctxzip.train.context_data import LabelledTask, _normalised

RATIOS = (1 / 3, 1 / 6, 1 / 10)


@dataclass
class Prepared:
    """Per task: sentence costs (cl100k) and what a kept sentence contributes to the metric."""

    costs: np.ndarray
    total: int
    gain: np.ndarray  # answer sets: 1 where the sentence holds an answer; span sets: gold characters in it
    span_metric: bool
    gold_total: float


def prepare(item: LabelledTask, counter) -> Prepared:
    task = item.task
    costs = np.asarray(counter.count_many([s or " " for s in task.sentences]), dtype=np.int64)
    if item.gold_spans:
        gain = np.zeros(len(task))
        for d, start, end in item.gold_spans:
            rows = np.flatnonzero(task.sentence_doc == d)
            gain[rows] += np.maximum(0, np.minimum(task.sentence_end[rows], end) - np.maximum(task.sentence_start[rows], start))
        return Prepared(costs, int(costs.sum()), gain, True, float(sum(e - s for _, s, e in item.gold_spans)))
    wanted = [_normalised(a) for a in item.answers if _normalised(a).strip()]
    gain = np.array([any(a in _normalised(s) for a in wanted) for s in task.sentences], dtype=np.float64)
    return Prepared(costs, int(costs.sum()), gain, False, 1.0)


def greedy_keep(scores: np.ndarray, costs: np.ndarray, room: int, selectable: np.ndarray) -> np.ndarray:
    order = np.lexsort((np.arange(len(scores)), -scores))
    order = order[selectable[order]]
    keep = np.zeros(len(scores), dtype=bool)
    for i in order.tolist():
        if costs[i] <= room:
            keep[i] = True
            room -= int(costs[i])
    return keep


def quality(prepared: Prepared, scores: np.ndarray, ratio: float, selectable: np.ndarray) -> float:
    keep = greedy_keep(scores, prepared.costs, int(ratio * prepared.total), selectable)
    if prepared.span_metric:
        return float(prepared.gain[keep].sum() / prepared.gold_total) if prepared.gold_total else float("nan")
    return float(prepared.gain[keep].any())


def selectable_masks(items: list[LabelledTask], scores: list[np.ndarray], duplicate_threshold: float = 0.9):
    """Per item, the sentences left after de-dup when `scores` decide which copy stays."""
    return [~duplicate_mask(item.task.sentences, s, duplicate_threshold) for item, s in zip(items, scores)]


def report(items: list[LabelledTask], prepared: list[Prepared], scores: list[np.ndarray],
           selectable: list[np.ndarray] | None = None) -> dict[str, dict[str, float]]:
    """{source: {ratio name: mean quality}} over the items that can score (answer present / gold present).
    `selectable` (from `selectable_masks`) may be given to reuse one de-dup across many score variants."""
    selectable = selectable_masks(items, scores) if selectable is None else selectable
    per: dict[tuple[str, str], list[float]] = {}
    for item, prep, s, mask in zip(items, prepared, scores, selectable):
        if not prep.span_metric and not prep.gain.any():
            continue  # the answer is not in the passages: no method can keep it
        for ratio, name in zip(RATIOS, ("1/3", "1/6", "1/10")):
            per.setdefault((item.source, name), []).append(quality(prep, s, ratio, mask))
    out: dict[str, dict[str, float]] = {}
    for (source, name), values in per.items():
        out.setdefault(source, {})[name] = float(np.nanmean(values))
    return out


# The sets `eval.quality` reports on; other sources (shuffled copies) are trained on and shown, not chosen by.
REPORTED = ("hotpot-bm25", "hotpot-minilm", "squad-chunks", "qmsum")


def summary(table: dict[str, dict[str, float]]) -> tuple[float, float]:
    """(mean, worst) over the reported sets and budgets of the per-set means."""
    chosen = {k: v for k, v in table.items() if k in REPORTED} or table
    values = [v for per in chosen.values() for v in per.values()]
    worst = min(np.mean(list(per.values())) for per in chosen.values())
    return float(np.mean(values)), float(worst)
