"""Why does truncation after de-dup beat the extractive default on retriever-ordered sets? Measurements.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.quality_analysis --part dev --n 150

Writes eval/results/quality-analysis.md. Run on the dev parts (what it finds shapes the method; the
eval parts stay for the report). Four measurements:

1. The sets: passages, tokens, exact and near-duplicate sentences, where the answer sits (rank of the
   first passage that contains it; HotpotQA gold passages among the 10).
2. Where each ordering puts the answer: for every example, the share of the context's tokens that
   must be kept, taking sentences in the method's order after its de-dup, before the first sentence
   that contains the answer is in (the budget at which the answer can first survive). Compared for
   the default's scores and for input order.
3. Outcomes at each budget split by the rank of the answer passage, by bridge/comparison, and the
   number of distinct passages each method keeps something of (reach).
4. Interventions, each changing one thing of the default: one round; rank prior mixed into the
   scores; every passage's best sentence first (reach); exact instead of near de-dup; no de-dup.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from ctxzip.budget import get_token_counter
from ctxzip.relevance.base import SentenceScorer
from eval.devsets import DevExample, load_devset
from eval.metrics import answer_recall
from eval.quality import RATIO_NAMES, RATIOS, run_set, values_of
from eval.quality_methods import DEFAULT_EXTRACTIVE, EXACT, TRUNCATION, Method, extractive, standard_methods
from eval.report import markdown_table, write_results

QA_SETS = ("hotpot-bm25", "hotpot-minilm", "squad-chunks")


def _rank_normalised(scores: np.ndarray) -> np.ndarray:
    """1 for the best score falling evenly to 0 for the worst (scales of scorers differ)."""
    n = len(scores)
    rank = np.empty(n)
    rank[np.lexsort((np.arange(n), -scores))] = np.arange(n)
    return 1.0 - rank / max(1, n - 1)


@dataclass
class PriorMix(SentenceScorer):
    """(1 - weight) x the base scorer's rank-normalised score + weight x position (earlier first)."""

    base: SentenceScorer
    weight: float
    name = "prior_mix"

    def prepare(self, tasks):
        return self.base.prepare(tasks)

    def score(self, tasks, queries, prepared):
        from ctxzip.relevance.position import position_scores

        return [(1 - self.weight) * _rank_normalised(s) + self.weight * position_scores(len(s))
                for s in self.base.score(tasks, queries, prepared)]


@dataclass
class BestOfEachPassageFirst(SentenceScorer):
    """The base scores, with every passage's best sentence lifted above all other sentences."""

    base: SentenceScorer
    name = "reach"

    def prepare(self, tasks):
        return self.base.prepare(tasks)

    def score(self, tasks, queries, prepared):
        out = []
        for task, s in zip(tasks, self.base.score(tasks, queries, prepared)):
            s = _rank_normalised(s)
            best = np.zeros(len(s), dtype=bool)
            for d in np.unique(task.sentence_doc):
                rows = np.flatnonzero(task.sentence_doc == d)
                best[rows[np.argmax(s[rows])]] = True
            out.append(s + 2.0 * best)
        return out


def _context_scorer():
    from ctxzip.relevance import create_scorer

    return create_scorer("context")


def intervention_methods() -> dict[str, Method]:
    methods = [
        Method("default, 1 round", extractive(rounds=1)),
        Method("default + rank prior 0.3", lambda: extractive(scorer=PriorMix(_context_scorer(), 0.3), rounds=1)()),
        Method("default + rank prior 0.5", lambda: extractive(scorer=PriorMix(_context_scorer(), 0.5), rounds=1)()),
        Method("default + rank prior 0.7", lambda: extractive(scorer=PriorMix(_context_scorer(), 0.7), rounds=1)()),
        Method("default, best sentence of each passage first",
               lambda: extractive(scorer=BestOfEachPassageFirst(_context_scorer()), rounds=1)()),
        Method("default, exact de-dup", extractive(duplicate_threshold=EXACT)),
        Method("default, no de-dup", extractive(deduplicate=False)),
        Method("truncation, no de-dup", lambda: extractive(scorer=_position(), rounds=1, deduplicate=False)()),
    ]
    return {m.label: m for m in methods}


def _position():
    from ctxzip.relevance.position import PositionScorer

    return PositionScorer()


# --- 1. the sets ------------------------------------------------------------------------------


def contains_answer(example: DevExample, text: str) -> bool:
    return bool(answer_recall(example.answers, text))


def answer_rank(example: DevExample) -> int | None:
    """Rank of the first passage that contains a gold answer (None: not in the 10)."""
    for rank, doc in enumerate(example.documents):
        if contains_answer(example, doc.text):
            return rank
    return None


def set_statistics(name: str, examples: list[DevExample], counter) -> list:
    from ctxzip.compressors.extractive import sentence_task
    from ctxzip.redundancy import duplicate_mask

    tokens, exact, near, ranks = [], [], [], []
    gold_all, gold_some = [], []
    for ex in examples:
        tokens.append(counter.count("\n\n".join(d.text for d in ex.documents)))
        task = sentence_task(ex.documents, ex.question)
        order = -np.arange(len(task), dtype=np.float64)
        has = np.array([bool(s) for s in task.sentences])
        exact.append(float((duplicate_mask(task.sentences, order, 1.0) & has).mean()))
        near.append(float((duplicate_mask(task.sentences, order, 0.9) & has).mean()))
        if ex.metric == "answer":
            ranks.append(answer_rank(ex))
        if "gold_titles" in ex.meta:
            gold_all.append(set(ex.meta["gold_titles"]) <= {d.metadata["title"] for d in ex.documents})
            gold_some.append(bool(ex.meta["gold_ranks"]))
    row = [name, len(examples), f"{np.mean([len(e.documents) for e in examples]):.1f}", f"{np.mean(tokens):.0f}",
           f"{np.mean(exact):.1%}", f"{np.mean(near):.1%}"]
    if ranks:
        found = [r for r in ranks if r is not None]
        row += [f"{len(found) / len(ranks):.1%}", f"{np.mean([r == 0 for r in found]):.1%}",
                f"{np.mean([r <= 2 for r in found]):.1%}", f"{np.median(found):.0f}" if found else "-"]
    else:
        row += ["-", "-", "-", "-"]
    row += [f"{np.mean(gold_all):.1%} / {np.mean(gold_some):.1%}" if gold_all else "-"]
    return row


# --- 2. where each ordering puts the answer -------------------------------------------------------


def budget_to_answer(example: DevExample, counter, compressor) -> tuple[float | None, float | None]:
    """(score order, input order): share of the context's tokens kept before the first answer
    sentence is in, sentences taken in that order after the compressor's de-dup."""
    from ctxzip.compressors.extractive import sentence_task
    from ctxzip.redundancy import duplicate_mask

    task = sentence_task(example.documents, example.question)
    if not len(task):
        return None, None
    from ctxzip.compressors.base import make_request

    scores = compressor.score_units(make_request(example.documents, example.question)).score
    texts = task.sentences
    costs = np.asarray(counter.count_many([t or " " for t in texts]), dtype=np.float64)
    total = costs.sum()
    has_answer = np.array([bool(t) and contains_answer(example, t) for t in texts])
    if not has_answer.any():
        return None, None
    out = []
    for priority in (scores, -np.arange(len(texts), dtype=np.float64)):
        selectable = ~duplicate_mask(texts, priority, compressor.duplicate_threshold)
        order = np.lexsort((np.arange(len(texts)), -priority))
        order = order[selectable[order]]
        hits = np.flatnonzero(has_answer[order])
        out.append(float(costs[order[: hits[0] + 1]].sum() / total) if len(hits) else None)
    return out[0], out[1]


def share_within(values: list[float | None], limit: float) -> str:
    return f"{np.mean([v is not None and v <= limit for v in values]):.1%}"


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="dev")
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--sets", default="hotpot-bm25,hotpot-minilm,squad-chunks,qmsum")
    parser.add_argument("--name", default="quality-analysis")
    args = parser.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(2)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    counter = get_token_counter("cl100k_base")
    sets = [s for s in args.sets.split(",") if s]
    data = {s: load_devset(s, args.part, limit=args.n) for s in sets}
    lines = ["# Why truncation after de-dup beats the extractive default on retrieved passages", "",
             f"`python -m eval.quality_analysis {' '.join(argv or [])}`".replace(" `", "`"), "",
             f"Part **{args.part}** of each set ({', '.join(f'{s} {len(v)}' for s, v in data.items())} examples).", ""]

    rows = [set_statistics(s, data[s], counter) for s in sets]
    lines += ["## 1. The sets", "",
              "Duplicates: share of sentences that repeat an earlier one (exact = same after case folding and "
              "dropping punctuation; near = cosine >= 0.9 of word uni/bigrams, the default's de-dup).", "",
              markdown_table(["set", "n", "passages", "cl100k tokens", "exact dup sentences", "near dup sentences",
                              "answer in the 10", "answer in rank 1 passage", "in ranks 1-3", "median rank (0-based)",
                              "both / some HotpotQA gold passages present"], rows), ""]

    from ctxzip.compressors.extractive import ExtractiveCompressor

    default = ExtractiveCompressor()
    needed_rows, needed = [], {}
    for s in sets:
        if s not in QA_SETS:
            continue
        pairs = [budget_to_answer(ex, counter, default) for ex in data[s]]
        pairs = [p for p in pairs if p[0] is not None]
        by_score, by_input = [p[0] for p in pairs], [p[1] for p in pairs]
        needed[s] = pairs
        needed_rows.append([s, len(pairs), f"{np.median(by_score):.3f}", f"{np.median(by_input):.3f}",
                            *(f"{share_within(by_score, r)} / {share_within(by_input, r)}" for r in RATIOS),
                            f"{np.mean([a < b for a, b in pairs]):.1%}"])
    lines += ["## 2. Where the answer sentence sits in each ordering", "",
              "Examples whose 10 passages contain the answer. 'Budget to answer' = share of the context's tokens "
              "taken, sentence by sentence in that order (after de-dup), up to and including the first sentence that "
              "contains the answer: the smallest budget at which a greedy selection in that order keeps it. Default "
              "order = the shipped context head's final scores (2 rounds); input order = truncation.", "",
              markdown_table(["set", "examples", "median budget to answer, default order", "median, input order",
                              *(f"answer reachable within {RATIO_NAMES[r]}: default / input" for r in RATIOS),
                              "default order needs less"], needed_rows), ""]

    methods = {k: v for k, v in standard_methods().items() if k in (DEFAULT_EXTRACTIVE, TRUNCATION)}
    methods.update(intervention_methods())
    records = []
    for s in sets:
        records += run_set(methods, data[s], counter, s)

    # 3. outcomes split by answer rank and question type; reach
    by_id = {ex.id: ex for s in sets for ex in data[s]}
    split_rows = []
    for s in sets:
        if s not in QA_SETS:
            continue
        groups = {"answer in rank 1": [], "ranks 2-3": [], "ranks 4-10": [], "not in the 10": []}
        for ex in data[s]:
            r = answer_rank(ex)
            key = "not in the 10" if r is None else "answer in rank 1" if r == 0 else "ranks 2-3" if r <= 2 else "ranks 4-10"
            groups[key].append(ex.id)
        for ratio in ("1/3", "1/6"):
            for key, ids in groups.items():
                if not ids or key == "not in the 10":
                    continue
                row = [s, ratio, key, len(ids)]
                for method in (DEFAULT_EXTRACTIVE, TRUNCATION):
                    vals = [r["quality"] for r in records if r["method"] == method and r["set"] == s
                            and r["ratio"] == ratio and r["id"] in set(ids)]
                    row.append(f"{np.mean(vals):.3f}")
                split_rows.append(row)
    lines += ["## 3. Answer recall by where the answer passage is ranked", "",
              markdown_table(["set", "budget", "first answer passage", "n", DEFAULT_EXTRACTIVE, TRUNCATION],
                             split_rows), ""]

    type_rows = []
    for s in ("hotpot-bm25", "hotpot-minilm"):
        if s not in sets:
            continue
        for qtype in ("bridge", "comparison"):
            ids = {ex.id for ex in data[s] if ex.meta.get("type") == qtype}
            for ratio in ("1/3", "1/6"):
                row = [s, qtype, ratio, len(ids)]
                for method in (DEFAULT_EXTRACTIVE, TRUNCATION):
                    vals = [r["quality"] for r in records if r["method"] == method and r["set"] == s
                            and r["ratio"] == ratio and r["id"] in ids]
                    row.append(f"{np.mean(vals):.3f}" if vals else "-")
                type_rows.append(row)
    lines += ["HotpotQA by question type:", "",
              markdown_table(["set", "type", "budget", "n", DEFAULT_EXTRACTIVE, TRUNCATION], type_rows), ""]

    reach_rows = []
    for s in sets:
        for ratio in RATIO_NAMES.values():
            row = [s, ratio]
            for method in methods:
                kept = [len(r["kept_docs"]) for r in records if r["method"] == method and r["set"] == s
                        and r["ratio"] == ratio]
                row.append(f"{np.mean(kept):.2f}")
            reach_rows.append(row)
    lines += ["Reach: mean number of distinct passages with at least one kept sentence (qmsum has one document).", "",
              markdown_table(["set", "budget", *methods], reach_rows), ""]

    # 4. interventions
    rows = []
    for method in methods:
        row = [method]
        for ratio in RATIO_NAMES.values():
            means = [float(np.nanmean(values_of(records, method, s, ratio))) for s in sets]
            row += [" / ".join(f"{m:.3f}" for m in means), f"{min(means):.3f}"]
        rows.append(row)
    header = ["method"]
    for ratio in RATIO_NAMES.values():
        header += [f"{ratio}: {' / '.join(sets)}", f"{ratio} worst"]
    lines += ["## 4. Interventions (one change each)", "", markdown_table(header, rows), ""]

    # contingency at 1/6: what the default misses that truncation keeps
    miss_rows = []
    for s in sets:
        if s not in QA_SETS:
            continue
        d = {r["id"]: r for r in records if r["method"] == DEFAULT_EXTRACTIVE and r["set"] == s and r["ratio"] == "1/6"}
        t = {r["id"]: r for r in records if r["method"] == TRUNCATION and r["set"] == s and r["ratio"] == "1/6"}
        only_t = [i for i in d if t[i]["quality"] > d[i]["quality"]]
        only_d = [i for i in d if d[i]["quality"] > t[i]["quality"]]
        ranks_t = [answer_rank(by_id[i]) for i in only_t]
        miss_rows.append([s, len(only_t), len(only_d),
                          f"{np.mean([r == 0 for r in ranks_t]):.0%}" if ranks_t else "-",
                          f"{np.mean([len(d[i]['kept_docs']) for i in only_t]):.1f}" if only_t else "-",
                          f"{np.mean([len(t[i]['kept_docs']) for i in only_t]):.1f}" if only_t else "-"])
    lines += ["## Where they differ at 1/6", "",
              markdown_table(["set", "only truncation keeps the answer", "only the default keeps it",
                              "of the first: answer in the rank-1 passage", "passages the default reached",
                              "passages truncation reached"], miss_rows), ""]
    print(write_results(args.name, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
