"""The budget solver every text compressor shares.

A compressor cuts its documents into units (character spans), scores them, and hands them here with
its selection options. `select_under_budget` keeps the best units that fit, in their original order,
always keeps the protected ones, and builds the output by slicing the original text. Token counts of
joined text are not the sum of the parts, so the final string is counted and the choice repaired
until it fits.

What methods need beyond "best units first" is here too, so no method keeps its own copy:
- `selectable`: units that may not be chosen (filtered out) unless protected;
- `group`: units kept or dropped together (a closing brace with its header, a tool call with its result);
- `parent`: a unit is only kept with the unit it depends on (a statement with its function's header);
- `placeholders`: a render hook giving the text that stands in for elided runs (code `...`, JSON markers);
- `SelectionOptions`: de-duplication, a relevance floor, top documents, output order, the separator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ctxzip.budget import TokenCounter
from ctxzip.document import Document, Inserted, Span
from ctxzip.errors import BudgetTooSmallError, InvalidInputError

DOCUMENT_SEPARATOR = "\n\n"
ORDERS = ("original", "relevance")
_MAX_REPAIRS = 64
_MAX_REFILLS = 4

# The render hook: given the kept mask, (document index, offset in that document, text) of each
# piece of text that stands in for something elided.
Placeholders = Callable[[np.ndarray], list[tuple[int, int, str]]]


@dataclass(frozen=True)
class SelectionOptions:
    """How the solver chooses, beyond "best units first, within the budget".

    deduplicate: near-duplicate threshold (cosine of word uni/bigrams; 1.0 = exact repeats only);
        a repeated unit is kept once, the best-scored copy. None = off.
    min_score: relevance floor; units scoring below it are not kept. If none passes, the output is
        empty on purpose and `info["empty_context"]` says so (selective augmentation).
    top_documents: only units of the N documents with the best unit score may be kept.
    order: "original" document order in the output, or "relevance" (best document first).
    skip: when the next best unit does not fit, go on with smaller ones after it (a knapsack fill);
        False stops there, so that a positional method (truncation) keeps an unbroken run.
    """

    deduplicate: float | None = None
    min_score: float | None = None
    top_documents: int | None = None
    order: str = "original"
    separator: str = DOCUMENT_SEPARATOR
    skip: bool = True

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise InvalidInputError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.deduplicate is not None and not 0.0 < self.deduplicate <= 1.0:
            raise InvalidInputError(f"deduplicate must be a threshold in (0, 1] or None, got {self.deduplicate!r}")
        if self.top_documents is not None and (isinstance(self.top_documents, bool) or self.top_documents < 1):
            raise InvalidInputError(f"top_documents must be >= 1, got {self.top_documents!r}")


@dataclass
class Units:
    """Parallel arrays describing units, sorted by (doc, start) and not overlapping."""

    doc: np.ndarray  # index into the documents list
    start: np.ndarray
    end: np.ndarray
    score: np.ndarray
    protected: np.ndarray
    selectable: np.ndarray | None = None
    group: np.ndarray | None = None  # -1: a group of its own
    parent: np.ndarray | None = None  # -1: depends on nothing; parents come before their children
    placeholders: Placeholders | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict)  # what the method reports in the result's info (and "timings")

    @classmethod
    def build(cls, doc, start, end, score, protected=None, *, selectable=None, group=None, parent=None,
              placeholders: Placeholders | None = None, info: dict | None = None) -> "Units":
        doc = np.asarray(doc, dtype=np.int64)
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        score = np.asarray(score, dtype=np.float64)
        n = len(doc)
        protected = np.zeros(n, dtype=bool) if protected is None else np.asarray(protected, dtype=bool)
        arrays = [start, end, score, protected]
        if selectable is not None:
            selectable = np.asarray(selectable, dtype=bool)
            arrays.append(selectable)
        if group is not None:
            group = np.asarray(group, dtype=np.int64)
            arrays.append(group)
        if parent is not None:
            parent = np.asarray(parent, dtype=np.int64)
            arrays.append(parent)
        if any(len(a) != n for a in arrays):
            raise InvalidInputError("unit arrays must have the same length")
        if n and (np.any(end < start) or np.any(np.isnan(score))):
            raise InvalidInputError("units need end >= start and scores that are not NaN")
        if n > 1:
            same_doc = doc[1:] == doc[:-1]
            if np.any(doc[1:] < doc[:-1]) or np.any(same_doc & (start[1:] < end[:-1])):
                raise InvalidInputError("units must be sorted by (doc, start) and must not overlap")
        if parent is not None and np.any(parent >= np.arange(n)):
            raise InvalidInputError("a unit's parent must come before it")
        return cls(doc, start, end, score, protected, selectable, group, parent, placeholders, dict(info or {}))

    @classmethod
    def empty(cls) -> "Units":
        return cls.build([], [], [], [])

    def __len__(self) -> int:
        return len(self.doc)

    def texts(self, documents: list[Document]) -> list[str]:
        return [documents[d].text[s:e] for d, s, e in zip(self.doc.tolist(), self.start.tolist(), self.end.tolist())]


@dataclass
class Selection:
    """The solver's answer, rendered: output documents in output order, with provenance."""

    mask: np.ndarray
    order: list[int]  # output position -> document index
    doc_texts: list[str]  # per output position ("" = nothing kept)
    text: str
    tokens: int
    kept: list[Span]
    inserted: list[Inserted]
    info: dict = field(default_factory=dict)
    mask_items: np.ndarray | None = field(default=None, repr=False)  # the solver's own view of `mask`


def select_under_budget(
    documents: list[Document],
    units: Units,
    budget_tokens: int,
    counter: TokenCounter,
    options: SelectionOptions = SelectionOptions(),
    costs: np.ndarray | None = None,
) -> Selection:
    """Keep the highest-scoring units whose rendered text fits in `budget_tokens`.

    Ties in score go to the earlier unit. Raises BudgetTooSmallError if the protected units alone do
    not fit, or if no unit with content fits at all (an output that silently drops everything).
    """
    if costs is None:
        costs = unit_costs(documents, units, counter)
    order = _document_order(documents, units, options.order)
    info: dict = {}
    selectable = _selectable(documents, units, options, info)
    items = _Items(units, costs, selectable, options.skip)

    def measure(item_mask: np.ndarray) -> Selection:
        selection = render(documents, units, items.unit_mask(item_mask), counter, order, options.separator)
        selection.mask_items = item_mask
        return selection

    everything = measure(np.ones(items.n, dtype=bool))
    if everything.tokens <= budget_tokens and selectable.all():
        everything.info = info
        return everything

    floor_mask = items.with_ancestors(items.protected.copy())
    floor = measure(floor_mask)
    if floor.tokens > budget_tokens:
        raise BudgetTooSmallError(
            f"protected spans alone need {floor.tokens} tokens, more than the budget of {budget_tokens}"
        )
    candidates = np.flatnonzero(items.selectable & ~floor_mask)
    candidates = candidates[np.lexsort((candidates, -items.score[candidates]))]  # best first, then earlier
    best = measure(items.fill(floor_mask.copy(), candidates, budget_tokens - floor.tokens))

    # Repair: the joined text may cost more than the parts; drop the weakest until it fits.
    for _ in range(_MAX_REPAIRS):
        if best.tokens <= budget_tokens:
            break
        best = measure(items.drop_weakest(best.mask_items, floor_mask, best.tokens - budget_tokens))
    if best.tokens > budget_tokens:
        best = floor

    # Refill: the joined text may cost less than the parts; try adding what now fits.
    for _ in range(_MAX_REFILLS):
        slack = budget_tokens - best.tokens
        remaining = candidates[~best.mask_items[candidates]]
        if slack <= 0 or not len(remaining) or items.cost[remaining].min() > slack:
            break
        candidate = measure(items.fill(best.mask_items.copy(), remaining, slack))
        if candidate.tokens > budget_tokens or candidate.tokens == best.tokens:
            break
        best = candidate

    if not best.text.strip() and everything.text.strip() and options.min_score is None:
        smallest = int(items.cost[candidates].min()) if len(candidates) else 0
        raise BudgetTooSmallError(
            f"the budget of {budget_tokens} tokens cannot hold any unit of this input (the smallest costs {smallest})"
        )
    best.info = info
    return best


# -- what may be chosen ---------------------------------------------------------------------------


def _selectable(documents: list[Document], units: Units, options: SelectionOptions, info: dict) -> np.ndarray:
    """Units the solver may choose: the method's own mask, less repeats, weak documents and units under the floor."""
    selectable = np.ones(len(units), dtype=bool) if units.selectable is None else units.selectable.copy()
    if options.deduplicate is not None and len(units) > 1:
        from ctxzip.redundancy import duplicate_mask

        texts = [t.strip() for t in units.texts(documents)]
        has_text = np.array([bool(t) for t in texts], dtype=bool)
        duplicate = duplicate_mask(texts, units.score, options.deduplicate) & has_text & ~units.protected
        info["duplicates_removed"] = int((duplicate & selectable).sum())
        selectable &= ~duplicate
    if options.top_documents is not None and len(documents) > options.top_documents:
        best = np.argsort(-_document_scores(documents, units, selectable), kind="stable")[: options.top_documents]
        selectable &= np.isin(units.doc, best)
        info["documents_kept"] = [documents[d].id for d in sorted(best.tolist())]
    if options.min_score is not None:
        passing = units.score >= options.min_score
        info["max_score"] = float(units.score.max()) if len(units) else None
        info["empty_context"] = not bool(np.any(selectable & passing))
        if info["empty_context"]:
            info["reason"] = f"no unit scored at least min_score={options.min_score}"
        selectable &= passing
    return selectable | units.protected


def _document_scores(documents: list[Document], units: Units, mask: np.ndarray) -> np.ndarray:
    scores = np.full(len(documents), -np.inf)
    if mask.any():
        np.maximum.at(scores, units.doc[mask], units.score[mask])
    return scores


def _document_order(documents: list[Document], units: Units, order: str) -> list[int]:
    if order == "original":
        return list(range(len(documents)))
    return np.argsort(-_document_scores(documents, units, np.ones(len(units), dtype=bool)), kind="stable").tolist()


# -- items: what the solver keeps or drops as one ------------------------------------------------


class _Items:
    """Units folded into items: a group is one item, an ungrouped unit its own. An item costs the sum
    of its units, scores as its best unit, is protected if any unit is, and depends on the item of
    its first unit's parent."""

    def __init__(self, units: Units, costs: np.ndarray, selectable: np.ndarray, skip: bool = True) -> None:
        n = len(units)
        self.skip = skip
        if units.group is None:
            self.of_unit = np.arange(n)
        else:
            # Ungrouped units get fresh ids after the largest group id; then ids are made dense.
            raw = np.where(units.group >= 0, units.group, units.group.max(initial=-1) + 1 + np.arange(n))
            _, self.of_unit = np.unique(raw, return_inverse=True)
        self.n = int(self.of_unit.max()) + 1 if n else 0
        self.cost = np.bincount(self.of_unit, weights=costs, minlength=self.n).astype(np.int64)
        self.score = np.full(self.n, -np.inf)
        np.maximum.at(self.score, self.of_unit, units.score)
        self.protected = np.bincount(self.of_unit, weights=units.protected, minlength=self.n) > 0
        self.selectable = np.bincount(self.of_unit, weights=selectable, minlength=self.n) > 0
        self.parent: np.ndarray | None = None
        if units.parent is not None and np.any(units.parent >= 0):
            self.parent = np.full(self.n, -1, dtype=np.int64)
            has = np.flatnonzero(units.parent >= 0)[::-1]  # reversed, so the first unit of an item wins
            self.parent[self.of_unit[has]] = self.of_unit[units.parent[has]]
            self.parent[self.parent == np.arange(self.n)] = -1

    def unit_mask(self, item_mask: np.ndarray) -> np.ndarray:
        return item_mask[self.of_unit]

    def with_ancestors(self, mask: np.ndarray) -> np.ndarray:
        if self.parent is None:
            return mask
        for i in np.flatnonzero(mask)[::-1].tolist():
            p = int(self.parent[i])
            while p >= 0 and not mask[p]:
                mask[p] = True
                p = int(self.parent[p])
        return mask

    def fill(self, mask: np.ndarray, order: np.ndarray, room: int) -> np.ndarray:
        """Greedy knapsack: take items in `order` (each with the ancestors it needs) while they fit."""
        if room <= 0 or not len(order):
            return mask
        if self.parent is None:
            return _fill_independent(mask, order, self.cost, room, self.skip)
        parents, costs, keep = self.parent.tolist(), self.cost.tolist(), mask.tolist()
        for i in order.tolist():
            if keep[i]:
                continue
            chain, p = [i], parents[i]
            while p >= 0 and not keep[p]:
                chain.append(p)
                p = parents[p]
            cost = sum(costs[c] for c in chain)
            if cost > room and not self.skip:
                break
            if cost <= room:
                for c in chain:
                    keep[c] = True
                room -= cost
                if room <= 0:
                    break
        return np.asarray(keep, dtype=bool)

    def drop_weakest(self, mask: np.ndarray, floor: np.ndarray, excess: int) -> np.ndarray:
        """Unselect the lowest-scoring kept items nothing kept depends on, worth `excess` tokens."""
        mask = mask.copy()
        leaves = mask & ~floor
        if self.parent is not None:
            has_kept_child = np.zeros(self.n, dtype=bool)
            children = np.flatnonzero(mask & (self.parent >= 0))
            has_kept_child[self.parent[children]] = True
            leaves &= ~has_kept_child
        chosen = np.flatnonzero(leaves)
        if not len(chosen):
            return mask
        weakest = chosen[np.lexsort((-chosen, self.score[chosen]))]
        cumulative = np.cumsum(np.maximum(self.cost[weakest], 1))
        count = int(np.searchsorted(cumulative, excess, side="left")) + 1
        mask[weakest[:count]] = False
        return mask


def _fill_independent(mask: np.ndarray, order: np.ndarray, costs: np.ndarray, room: int, skip: bool) -> np.ndarray:
    """The fast path without dependencies: a prefix that fits, then (with `skip`) whatever else fits, in order."""
    free = order[costs[order] <= 0]
    mask[free] = True
    order = order[costs[order] > 0]
    if not len(order):
        return mask
    cumulative = np.cumsum(costs[order])
    prefix = int(np.searchsorted(cumulative, room, side="right"))
    mask[order[:prefix]] = True
    room -= int(cumulative[prefix - 1]) if prefix else 0
    rest = order[prefix + 1 :] if skip else order[:0]  # order[prefix] itself did not fit
    while room > 0 and len(rest):
        fits = np.flatnonzero(costs[rest] <= room)
        if not len(fits):
            break
        pick = rest[fits[0]]
        mask[pick] = True
        room -= int(costs[pick])
        rest = rest[fits[0] + 1 :]
    return mask


# -- rendering ------------------------------------------------------------------------------------


def render(documents: list[Document], units: Units, mask: np.ndarray, counter: TokenCounter | None = None,
           order: list[int] | None = None, separator: str = DOCUMENT_SEPARATOR) -> Selection:
    """The kept slices of each document, with the placeholders the hook adds, joined with `separator`.

    A document's output starts at its first character that is not whitespace. Kept spans that touch
    are merged; `inserted` holds every piece of text that is not a slice of the original.
    """
    order = list(range(len(documents))) if order is None else order
    pieces: list[list[tuple[int, int, int, str | None]]] = [[] for _ in documents]
    kept = np.flatnonzero(mask)
    for d, s, e in zip(units.doc[kept].tolist(), units.start[kept].tolist(), units.end[kept].tolist()):
        if e > s:
            pieces[d].append((s, 1, e, None))
    if units.placeholders is not None:
        for d, at, text in units.placeholders(mask):
            if text:
                pieces[d].append((at, 0, at, text))
    doc_texts, spans, inserted = [], [], []
    for d in order:
        doc_id, source = documents[d].id, documents[d].text
        parts: list[str] = []
        for start, _, end, text in _strip_leading_space(sorted(pieces[d], key=lambda p: p[:2]), source):
            if text is not None:
                inserted.append(Inserted(doc_id, start, text))
                parts.append(text)
                continue
            parts.append(source[start:end])
            if spans and spans[-1].doc_id == doc_id and spans[-1].end == start and not _inserted_at(inserted, doc_id, start):
                spans[-1] = Span(doc_id, spans[-1].start, end)
            else:
                spans.append(Span(doc_id, start, end))
        doc_texts.append("".join(parts))
    text = separator.join(t for t in doc_texts if t)
    tokens = counter.count(text) if counter is not None else -1
    return Selection(mask, order, doc_texts, text, tokens, spans, inserted)


def _inserted_at(inserted: list[Inserted], doc_id: str, at: int) -> bool:
    return bool(inserted) and inserted[-1].doc_id == doc_id and inserted[-1].at == at


def _strip_leading_space(pieces: list[tuple[int, int, int, str | None]], source: str):
    """Drop whitespace before a document's first visible character (pieces that are only whitespace go)."""
    for index, (start, kind, end, text) in enumerate(pieces):
        if text is not None:
            stripped = text.lstrip()
            if stripped:
                return [(start, kind, end, stripped)] + pieces[index + 1 :]
            continue
        content = source[start:end]
        stripped = content.lstrip()
        if stripped:
            return [(end - len(stripped), kind, end, None)] + pieces[index + 1 :]
    return []


def unit_costs(documents: list[Document], units: Units, counter: TokenCounter) -> np.ndarray:
    """Tokens per unit, counted in context: each document is tokenized once and every token is
    charged to the unit where it starts. Much faster than counting 100k tiny strings, and closer
    to what the joined text costs. Counters without `token_starts` count each unit alone."""
    if not hasattr(counter, "token_starts"):
        return np.asarray(counter.count_many(units.texts(documents)), dtype=np.int64)
    costs = np.zeros(len(units), dtype=np.int64)
    boundaries = np.flatnonzero(np.diff(units.doc)) + 1
    for rows in np.split(np.arange(len(units)), boundaries):
        if not len(rows):
            continue
        starts = counter.token_starts(documents[units.doc[rows[0]]].text)
        owner = np.searchsorted(units.start[rows], starts, side="right") - 1
        owner = owner[owner >= 0]
        costs[rows] = np.bincount(owner, minlength=len(rows))
    return costs
