"""The final choice of code units under the budget, counted on the rendered string.

Like `ctxzip.select.select_under_budget`, but a unit is only taken with the header it depends on,
a closing brace goes with its header, and elided runs become placeholders, so the text that is
counted (and repaired until it fits) is the rendered skeleton, not a sum of slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.budget import TokenCounter
from ctxzip.code_analysis.chunking import CLOSE, HEADER, CodeUnits
from ctxzip.code_analysis.render import render_code
from ctxzip.document import Document
from ctxzip.errors import BudgetTooSmallError

_MAX_REPAIRS = 64
_PLACEHOLDER_TOKENS = 3  # "\n    ..." or " /* ... */", estimated before the final count


@dataclass
class CodeSelection:
    mask: np.ndarray
    doc_texts: list[str]
    text: str
    tokens: int
    placeholders: int


def close_under_parents(units: CodeUnits, mask: np.ndarray) -> np.ndarray:
    """Add every ancestor of a kept unit, and the closing brace of every kept header."""
    mask = mask.copy()
    parents = units.parent.tolist()
    keep = mask.tolist()
    for i in range(len(keep) - 1, -1, -1):  # parents precede children
        if keep[i] and parents[i] >= 0:
            keep[parents[i]] = True
    mask = np.asarray(keep, dtype=bool)
    closes = np.flatnonzero(units.kind == CLOSE)
    mask[closes] = mask[units.parent[closes]]
    return mask


def select_code(
    documents: list[Document],
    units: CodeUnits,
    priority: np.ndarray,
    budget_tokens: int,
    counter: TokenCounter,
    costs: np.ndarray,
    protected: np.ndarray | None = None,
) -> CodeSelection:
    """Keep the highest-priority units (with their headers) whose rendered text fits the budget."""
    is_close = units.kind == CLOSE
    # What taking a unit costs: itself, its closing brace, and a placeholder if it is a header.
    group_cost = costs.astype(np.int64).copy()
    np.add.at(group_cost, units.parent[is_close], costs[is_close])
    group_cost[units.kind == HEADER] += _PLACEHOLDER_TOKENS

    def measure(mask: np.ndarray) -> CodeSelection:
        doc_texts, text, placeholders = render_code(documents, units, mask)
        return CodeSelection(mask, doc_texts, text, counter.count(text), placeholders)

    floor_mask = units.required.copy() if protected is None else protected | units.required
    floor_mask = close_under_parents(units, floor_mask)
    floor = measure(floor_mask)
    if floor.tokens > budget_tokens:
        raise BudgetTooSmallError(
            f"protected spans alone need {floor.tokens} tokens, more than the budget of {budget_tokens}"
        )
    order = np.flatnonzero(~is_close & ~floor_mask)
    order = order[np.lexsort((order, -priority[order]))]
    mask = _fill(units, floor_mask.copy(), order, group_cost, budget_tokens - floor.tokens)
    best = measure(mask)

    for _ in range(_MAX_REPAIRS):  # the rendered text can cost more than the parts: drop the weakest leaves
        if best.tokens <= budget_tokens:
            break
        best = measure(_drop_weakest(units, best.mask, floor_mask, priority, group_cost, best.tokens - budget_tokens))
    if best.tokens > budget_tokens:
        best = floor

    for _ in range(4):  # or less: add what now fits
        slack = budget_tokens - best.tokens
        remaining = order[~best.mask[order]]
        if slack <= 0 or not len(remaining) or group_cost[remaining].min() > slack:
            break
        candidate = measure(_fill(units, best.mask.copy(), remaining, group_cost, slack))
        if candidate.tokens > budget_tokens or candidate.tokens == best.tokens:
            break
        best = candidate
    return best


def _fill(units: CodeUnits, mask: np.ndarray, order: np.ndarray, group_cost: np.ndarray, room: int) -> np.ndarray:
    """Greedy: take units in `order` whose header is kept, while they fit in `room` tokens."""
    parents = units.parent.tolist()
    costs = group_cost.tolist()
    keep = mask.tolist()
    for i in order.tolist():
        if room <= 0:
            break
        p = parents[i]
        if (p < 0 or keep[p]) and costs[i] <= room:
            keep[i] = True
            room -= costs[i]
    return close_under_parents(units, np.asarray(keep, dtype=bool))


def _drop_weakest(units, mask, floor_mask, priority, group_cost, excess: int) -> np.ndarray:
    """Unselect the lowest-priority kept leaves (units nothing kept depends on) worth `excess` tokens."""
    mask = mask.copy()
    kept_children = np.zeros(len(units), dtype=np.int64)
    has_parent = mask & (units.parent >= 0) & (units.kind != CLOSE)
    np.add.at(kept_children, units.parent[has_parent], 1)
    leaves = np.flatnonzero(mask & ~floor_mask & (kept_children == 0) & (units.kind != CLOSE))
    if not len(leaves):
        return mask
    weakest = leaves[np.lexsort((-leaves, priority[leaves]))]
    cumulative = np.cumsum(np.maximum(group_cost[weakest], 1))
    count = int(np.searchsorted(cumulative, excess, side="left")) + 1
    mask[weakest[:count]] = False
    closes = np.flatnonzero(units.kind == CLOSE)
    mask[closes] = mask[units.parent[closes]]
    return mask
