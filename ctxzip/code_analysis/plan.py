"""The fine stage: per-function budgets that follow the coarse scores, a knapsack over statement
blocks inside each function, and the priority every unit gets for the final solver."""

from __future__ import annotations

import numpy as np

from ctxzip.code_analysis.chunking import CLOSE, HEADER, IMPORT, CodeUnits
from ctxzip.scores import ranks

_KNAPSACK_CELLS = 4_000_000  # above this many DP cells a function falls back to greedy by value density

# Priority tiers: the solver takes units tier by tier, best chunk first inside a tier.
TIER_IMPORT, TIER_SKELETON, TIER_CHOSEN, TIER_HEADER, TIER_REST = 4.0, 3.0, 2.0, 1.0, 0.0


def rank01(values: np.ndarray) -> np.ndarray:
    """Scores mapped to (0, 1] by rank, best = 1; ties keep document order."""
    return 1.0 - ranks(values) / max(len(values), 1)


def allocate_budgets(costs: np.ndarray, scores: np.ndarray, room: int, overselect: float = 1.3,
                     spread: float = 2.0) -> np.ndarray:
    """Tokens each chunk may keep of its body: the best chunks (covering `overselect` x room) share
    `room` with retention rates that grow with their coarse score, never above their full cost."""
    budgets = np.zeros(len(costs), dtype=np.int64)
    if room <= 0 or not len(costs):
        return budgets
    order = np.lexsort((np.arange(len(costs)), -scores))
    cumulative = np.cumsum(costs[order])
    chosen = order[: int(np.searchsorted(cumulative, room * overselect, side="left")) + 1]
    chosen = chosen[costs[chosen] > 0]
    if not len(chosen):
        return budgets
    if costs[chosen].sum() <= room:
        budgets[chosen] = costs[chosen]
        return budgets
    s = scores[chosen]
    span = s.max() - s.min()
    # Retention falls off exponentially with the score gap to the best chunk: the best keep their
    # whole body, the marginal ones only their most relevant statements.
    weight = np.exp(spread * (s - s.max()) / span) if span > 0 else np.ones(len(chosen))
    low, high = 0.0, 1.0 / weight.min()
    for _ in range(40):  # bisection on the base retention rate
        middle = (low + high) / 2
        if np.minimum(costs[chosen], middle * weight * costs[chosen]).sum() > room:
            high = middle
        else:
            low = middle
    budgets[chosen] = np.floor(np.minimum(costs[chosen], low * weight * costs[chosen])).astype(np.int64)
    # Tokens lost to rounding down go to the best chunks first, one each.
    leftover = int(room - budgets.sum())
    short = chosen[budgets[chosen] < costs[chosen]][:max(leftover, 0)]
    budgets[short] += 1
    return budgets


def knapsack(weights: np.ndarray, values: np.ndarray, capacity: int) -> np.ndarray:
    """0/1 knapsack: the items (weights in tokens, positive values) that fit `capacity` with most value."""
    n = len(weights)
    weights = np.maximum(np.asarray(weights, dtype=np.int64), 0)
    chosen = weights == 0  # free items are always taken
    if n == 0 or capacity <= 0:
        return chosen
    if weights.sum() <= capacity:
        return np.ones(n, dtype=bool)
    if n * (capacity + 1) > _KNAPSACK_CELLS:
        room = capacity
        for i in np.lexsort((np.arange(n), -values / np.maximum(weights, 1))):
            if weights[i] <= room:
                chosen[i], room = True, room - weights[i]
        return chosen
    best = np.zeros(capacity + 1)
    took = np.zeros((n, capacity + 1), dtype=bool)
    for i in range(n):  # one vectorised pass over capacities per item
        w = int(weights[i])
        if w > capacity:
            continue
        candidate = np.full(capacity + 1, -np.inf)
        candidate[w:] = best[: capacity + 1 - w] + values[i]
        took[i] = candidate > best
        best = np.maximum(best, candidate)
    c = capacity
    for i in range(n - 1, -1, -1):
        if took[i, c]:
            chosen[i] = True
            c -= int(weights[i])
    return chosen


def unit_priorities(
    units: CodeUnits,
    costs: np.ndarray,
    chunk_scores: np.ndarray,
    item_scores: np.ndarray,
    budget: int,
    *,
    skeleton_share: float = 0.2,
    overselect: float = 1.3,
    spread: float = 2.0,
    placeholder_cost: int = 3,
) -> tuple[np.ndarray, dict]:
    """A priority per unit (higher = kept first) that encodes the coarse-to-fine plan.

    Imports first, then the skeleton (headers of the best chunks, up to `skeleton_share` of the
    budget), then the statements each function's knapsack chose, then the other headers, then
    the rest. A header never ranks below anything that depends on it.
    """
    n = len(units)
    chunk_rank = rank01(chunk_scores)
    is_header = units.kind == HEADER
    is_item = (units.kind != HEADER) & (units.kind != CLOSE) & (units.kind != IMPORT) & (units.chunk >= 0)
    header_cost = costs.astype(np.float64).copy()
    header_cost[is_header] += placeholder_cost
    # A closing brace costs what its header costs: they are kept together.
    closes = np.flatnonzero(units.kind == CLOSE)
    np.add.at(header_cost, units.parent[closes], costs[closes])

    # Skeleton: imports, then headers of the best chunks while they fit in their share.
    priority = np.full(n, TIER_REST)
    priority[units.kind == IMPORT] = TIER_IMPORT
    used = float(costs[units.kind == IMPORT].sum())
    headers = np.flatnonzero(is_header)
    headers = headers[np.lexsort((headers, -chunk_rank[units.chunk[headers]]))]
    cumulative = used + np.cumsum(header_cost[headers])
    in_skeleton = headers[cumulative <= skeleton_share * budget]
    priority[in_skeleton] = TIER_SKELETON
    priority[np.setdiff1d(headers, in_skeleton)] = TIER_HEADER
    used = float(cumulative[len(in_skeleton) - 1]) if len(in_skeleton) else used

    # Coarse: per-chunk budgets for bodies; fine: a knapsack over each chunk's statements.
    items = np.flatnonzero(is_item)
    body_cost = np.bincount(units.chunk[items], weights=costs[items], minlength=units.n_chunks)
    budgets = allocate_budgets(body_cost, chunk_scores, int(budget - used), overselect, spread)
    chosen_items = np.zeros(n, dtype=bool)
    for chunk in np.flatnonzero(budgets > 0):
        members = items[units.chunk[items] == chunk]
        values = item_scores[members]
        values = 0.1 + (values - values.min()) / (np.ptp(values) or 1.0)
        chosen_items[members[knapsack(costs[members], values, int(budgets[chunk]))]] = True
    priority[chosen_items] = TIER_CHOSEN

    has_chunk = units.chunk >= 0
    within = np.zeros(n)
    within[has_chunk] = chunk_rank[units.chunk[has_chunk]]
    item_rank = np.zeros(n)
    item_rank[items] = rank01(item_scores[items])
    score = priority + 0.9 * within + 0.09 * item_rank
    score[units.kind == IMPORT] = TIER_IMPORT + 0.9 - 0.5 * np.arange((units.kind == IMPORT).sum()) / max(n, 1)
    # Parents first: a header scores at least as high as anything under it (parents precede children).
    parents = units.parent.tolist()
    values = score.tolist()
    for i in range(n - 1, -1, -1):
        p = parents[i]
        if p >= 0 and values[i] > values[p]:
            values[p] = values[i]
    plan = {"skeleton_headers": int(len(in_skeleton)), "chunks_with_bodies": int((budgets > 0).sum()),
            "chosen_statements": int(chosen_items.sum())}
    return np.asarray(values), plan
