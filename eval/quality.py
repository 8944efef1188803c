"""Selection quality on production-like development sets: every method, every set, three budgets.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.quality --n 150

Writes eval/results/quality.md and quality.png (and per-example records under eval/.cache/quality/).

Sets (`eval.devsets`; parts and retrieval described there): open-retrieval HotpotQA with BM25 and with
MiniLM (10 passages in rank order), SQuAD v2 over overlapping chunks (10 in rank order), QMSum whole
meeting transcripts. Budgets are 1/3, 1/6 and 1/10 of each example's cl100k tokens (the documents
joined with blank lines). Metric: answer recall (a gold answer string survives, SQuAD normalisation)
on the QA sets, gold-span recall (share of the gold turns' characters kept) on QMSum; means with 95%
bootstrap intervals, the worst set and the mean over sets. Every method sees the same examples.

Also reported: budget overshoots (outputs over budget, must be 0), seconds per example (the first
budget's call, scoring included, with the embedding cache cleared before each example), and the
extractive default against truncation after de-dup per set and budget (paired bootstrap of the
difference). `--analysis` adds the diagnostic variants of `eval.quality_methods.analysis_methods`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ctxzip.budget import Budget, get_token_counter
from ctxzip.document import Span
from eval.devsets import SETS, DevExample, load_devset
from eval.metrics import answer_recall, bootstrap_ci
from eval.quality_methods import (DEFAULT_EXTRACTIVE, DEFAULT_TOKEN, FULL, RANDOM, TOKEN_WORDS, TRUNCATION, Method,
                                  Output, analysis_methods, clear_caches, standard_methods)
from eval.report import RESULTS, markdown_table, write_results

RATIOS = (1 / 3, 1 / 6, 1 / 10)
RATIO_NAMES = {1 / 3: "1/3", 1 / 6: "1/6", 1 / 10: "1/10"}
RECORDS = Path(__file__).resolve().parent / ".cache" / "quality"


def span_recall(gold: list[tuple[str, int, int]], kept: list[Span]) -> float:
    """Share of the gold spans' characters that lie inside kept spans (gold spans do not overlap)."""
    total = sum(e - s for _, s, e in gold)
    if not total:
        return float("nan")
    by_doc: dict[str, list[Span]] = {}
    for span in kept:
        by_doc.setdefault(span.doc_id, []).append(span)
    covered = 0
    for doc, s, e in gold:
        covered += sum(max(0, min(e, k.end) - max(s, k.start)) for k in by_doc.get(doc, []))
    return covered / total


def quality(example: DevExample, output: Output) -> float:
    if example.metric == "span":
        return span_recall(example.gold_spans, output.kept)
    return answer_recall(example.answers, output.text)


def example_budgets(example: DevExample, counter) -> tuple[int, list[Budget]]:
    original = counter.count("\n\n".join(d.text for d in example.documents if d.text))
    return original, [Budget(tokens=max(1, int(r * original))) for r in RATIOS]


def run_set(methods: dict[str, Method], examples: list[DevExample], counter, set_name: str) -> list[dict]:
    """One record per (method, example, budget)."""
    records = []
    for label, method in methods.items():
        started = time.perf_counter()
        previous = None
        for example in examples:
            original, budgets = example_budgets(example, counter)
            texts = [d.text for d in example.documents]
            if texts != previous:  # cold for new documents; queries on the same transcript reuse embeddings
                clear_caches()
            previous = texts
            outputs, seconds = method.run(example.documents, example.question, budgets)
            for ratio, budget, output in zip(RATIOS, budgets, outputs):
                tokens = counter.count(output.text)
                records.append({
                    "set": set_name, "method": label, "id": example.id, "ratio": RATIO_NAMES[ratio],
                    "budget": budget.tokens, "original": original, "tokens": tokens,
                    "over": bool(method.budgeted and tokens > budget.tokens), "quality": quality(example, output),
                    "seconds": seconds, "kept_docs": sorted({s.doc_id for s in output.kept}),
                })
        print(f"{set_name:14s} {label:50s} {(time.perf_counter() - started) / max(1, len(examples)):.2f} s/example",
              flush=True)
    return records


def cell(values: list[float]) -> str:
    mean, low, high = bootstrap_ci(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def paired_difference(a: list[float], b: list[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def values_of(records: list[dict], method: str, set_name: str, ratio: str) -> list[float]:
    rows = [r for r in records if r["method"] == method and r["set"] == set_name and r["ratio"] == ratio]
    rows.sort(key=lambda r: r["id"])
    return [r["quality"] for r in rows]


def tables(records: list[dict], methods: list[str], sets: list[str]) -> list[str]:
    lines = []
    for ratio in RATIO_NAMES.values():
        rows = []
        for method in methods:
            means = {s: float(np.nanmean(values_of(records, method, s, ratio))) for s in sets}
            worst = min(sets, key=lambda s: means[s])
            rows.append([method, *(cell(values_of(records, method, s, ratio)) for s in sets),
                         f"{means[worst]:.3f} ({worst})", f"{np.mean(list(means.values())):.3f}"])
        lines += [f"## Budget {ratio}", "", markdown_table(["method", *sets, "worst set", "mean of sets"], rows), ""]
    return lines


COMPARISONS = [  # (challenger, baseline, budgets): the targets
    (DEFAULT_EXTRACTIVE, TRUNCATION, ("1/3", "1/6", "1/10")),
    (DEFAULT_TOKEN, RANDOM, ("1/3",)),
    (DEFAULT_TOKEN, TOKEN_WORDS, ("1/3", "1/6", "1/10")),
]


def comparison(records: list[dict], sets: list[str], challenger: str = DEFAULT_EXTRACTIVE,
               baseline: str = TRUNCATION, budgets=tuple(RATIO_NAMES.values())) -> tuple[list[str], list[str]]:
    """Markdown lines and printable lines: challenger minus baseline per set and budget."""
    rows, printed = [], []
    for ratio in budgets:
        for s in sets:
            a, b = values_of(records, challenger, s, ratio), values_of(records, baseline, s, ratio)
            if not a or len(a) != len(b):
                continue
            mean, low, high = paired_difference(a, b)
            verdict = "yes" if mean > 0 else "no"
            rows.append([ratio, s, f"{np.nanmean(a):.3f}", f"{np.nanmean(b):.3f}", f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]",
                         verdict])
            printed.append(f"{ratio:5s} {s:14s} {challenger} {np.nanmean(a):.3f} vs {baseline} {np.nanmean(b):.3f}: "
                           f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] beats={verdict}")
    header = ["budget", "set", challenger, baseline, "difference [95% CI]", "beats"]
    return [f"## {challenger} against {baseline}", "", markdown_table(header, rows), ""], printed


def targets(records: list[dict], sets: list[str]) -> list[str]:
    """The issue's targets for the extractive default, each with its measured value and a verdict."""
    def mean(method: str, s: str, ratio: str) -> float:
        values = values_of(records, method, s, ratio)
        return float(np.nanmean(values)) if values else float("nan")

    rows = []
    for s in [s for s in ("hotpot-bm25", "hotpot-minilm", "squad-chunks") if s in sets]:
        gap = mean(FULL, s, "1/3") - mean(DEFAULT_EXTRACTIVE, s, "1/3")
        rows.append([f"1/3: within 2 points of the full context on {s}", f"{gap * 100:.1f} points below full",
                     "met" if gap <= 0.02 else "missed"])
    qa = [s for s in sets if s != "qmsum"]
    if qa:
        margins = {s: mean(DEFAULT_EXTRACTIVE, s, "1/6") - mean(TRUNCATION, s, "1/6") for s in qa}
        worst = min(qa, key=lambda s: mean(DEFAULT_EXTRACTIVE, s, "1/6"))
        rows.append(["1/6: at least 8 points above truncation after de-dup on the worst set",
                     f"{margins[worst] * 100:+.1f} points on {worst} (smallest margin: "
                     f"{min(margins.values()) * 100:+.1f} on {min(margins, key=margins.get)})",
                     "met" if margins[worst] >= 0.08 else "missed"])
    if "qmsum" in sets:
        value = mean(DEFAULT_EXTRACTIVE, "qmsum", "1/10")
        rows.append(["QMSum eval meetings, gold-span recall at 1/10 >= 0.40", f"{value:.3f}",
                     "met" if value >= 0.40 else "missed"])
    beaten = [f"{s} {r}" for s in sets for r in RATIO_NAMES.values()
              if mean(DEFAULT_EXTRACTIVE, s, r) <= mean(TRUNCATION, s, r)]
    rows.append(["beats truncation after de-dup on every set at 1/3, 1/6 and 1/10",
                 "not beaten on: " + (", ".join(beaten) or "none"), "met" if not beaten else "missed"])
    below = [s for s in sets if mean(DEFAULT_TOKEN, s, "1/3") < mean(RANDOM, s, "1/3")]
    rows.append(["token default with a query at least random sentences at 1/3 on every set",
                 "below on: " + (", ".join(below) or "none"), "met" if not below else "missed"])
    return ["## Targets (issue 16)", "", markdown_table(["target", "measured", "verdict"], rows), ""]


def overshoots_and_speed(records: list[dict], methods: list[str], sets: list[str]) -> list[str]:
    rows = []
    for method in methods:
        mine = [r for r in records if r["method"] == method]
        seconds = []
        for s in sets:
            per_example = {r["id"]: r["seconds"] for r in mine if r["set"] == s}
            seconds.append(f"{np.mean(list(per_example.values())):.3f}" if per_example else "-")
        rows.append([method, sum(r["over"] for r in mine), len(mine), *seconds])
    return ["## Budget overshoots and seconds per example", "",
            "Overshoots: outputs with more cl100k tokens than their budget (all sets and budgets). Seconds: the "
            "1/3-budget call per example (scoring included; the three budgets share one scoring through "
            "`compress_budgets`), 2 torch threads, under the heavy-job "
            "lock. Embedding caches (ctxzip's and LangChain's `CacheBackedEmbeddings`) are cleared whenever the "
            "documents change, so retrieved-passage examples are timed cold; the QMSum queries of one meeting "
            "(grouped) reuse the transcript's sentence embeddings after its first query, as repeated queries on "
            "one document would.", "",
            markdown_table(["method", "overshoots", "outputs", *(f"s/example {s}" for s in sets)], rows), ""]


def batched_speed(examples: list[DevExample], counter, labels: tuple[str, ...]) -> list[str]:
    """Seconds per example for one `compress` call each against one `compress_many` call over all, both
    cold (embedding caches cleared), budget 1/3, for the defaults."""
    rows = []
    methods = standard_methods()
    for label in labels:
        compressor = methods[label].compressor
        items = [(ex.documents, ex.question) for ex in examples]
        budgets = [example_budgets(ex, counter)[1][0] for ex in examples]
        compressor.compress(*items[0], budget=budgets[0])  # model loads are not per-example work
        clear_caches()
        started = time.perf_counter()
        for (documents, query), budget in zip(items, budgets):
            compressor.compress(documents, query, budget)
        single = (time.perf_counter() - started) / len(items)
        clear_caches()
        started = time.perf_counter()
        compressor.compress_many(items, budgets)
        batched = (time.perf_counter() - started) / len(items)
        rows.append([label, len(items), f"{single:.3f}", f"{batched:.3f}", f"{single / batched:.2f}x"])
        print("speed", rows[-1], flush=True)
    return ["## One call per example against `compress_many`", "",
            f"{len(examples)} hotpot-bm25 examples (10 passages, ~{np.mean([example_budgets(e, counter)[0] for e in examples]):.0f} "
            "cl100k tokens each), budget 1/3, caches cleared before each run, 2 torch threads, under the heavy-job lock.", "",
            markdown_table(["method", "examples", "s/example, one call each", "s/example, compress_many", "speed-up"], rows),
            ""]


def plot(records: list[dict], methods: list[str], sets: list[str], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4), dpi=110, squeeze=False)
    x = [1 / 10, 1 / 6, 1 / 3]
    for ax, s in zip(axes[0], sets):
        for method in methods:
            ys = [np.nanmean(values_of(records, method, s, RATIO_NAMES[r])) for r in x]
            ax.plot(x, ys, marker="o", label=method, linestyle="--" if method == FULL else "-")
        ax.set_title(s)
        ax.set_xlabel("budget (share of tokens)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("answer recall / gold-span recall (qmsum)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{name}.png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--n", type=int, default=150, help="examples per set (a seeded sample; QMSum has 112 eval)")
    parser.add_argument("--part", default="eval", help="eval (report) or dev (tuning)")
    parser.add_argument("--methods", default="", help="labels to run, separated by ';' (default: all standard)")
    parser.add_argument("--analysis", action="store_true", help="add the diagnostic variants")
    parser.add_argument("--name", default="quality")
    parser.add_argument("--speed", type=int, default=30, help="hotpot-bm25 examples for the batching check (0: skip)")
    parser.add_argument("--from-records", action="store_true",
                        help="report the records of the last run of --name again (no compressing; --speed still runs)")
    parser.add_argument("--extra", default="", help="analysis methods to add to the standard ones, separated by ';'")
    args = parser.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(2)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    counter = get_token_counter("cl100k_base")
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    methods = standard_methods()
    if args.analysis:
        methods.update(analysis_methods())
    known = {**standard_methods(), **analysis_methods()}
    if args.methods:  # any standard or analysis method, by label
        methods = {k.strip(): known[k.strip()] for k in args.methods.split(";") if k.strip()}
    methods.update({k.strip(): known[k.strip()] for k in args.extra.split(";") if k.strip()})
    data = {s: load_devset(s, args.part, limit=args.n) for s in sets}
    records = []
    RECORDS.mkdir(parents=True, exist_ok=True)
    command = "python -m eval.quality " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.from_records:
        with open(RECORDS / f"{args.name}.jsonl", encoding="utf-8") as f:
            records = [r for r in map(json.loads, f) if r["set"] in sets and r["method"] in methods]
        command = (RECORDS / f"{args.name}.command").read_text().strip() + f"`, reported again by `{command}"
    else:
        (RECORDS / f"{args.name}.command").write_text(command + "\n")
    for s in [] if args.from_records else sets:
        records += run_set(methods, data[s], counter, s)
        with open(RECORDS / f"{args.name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)

    labels = list(methods)
    sizes = ", ".join(f"{s} {len(data[s])}" for s in sets)
    lines = ["# Selection quality on production-like development sets (issue 16)", "",
             f"`{command.strip()}`", "",
             f"Part: **{args.part}**. Examples per set: {sizes} (seeded samples, the same for every method). "
             "Budgets are shares of each example's cl100k tokens. Cells: answer recall (QA sets) or gold-span recall "
             "(qmsum), mean [95% bootstrap interval]. Worst set and mean are over the sets' means. Sets and parts: "
             "`eval/devsets/__init__.py` and `docs/quality.md`.", ""]
    lines += tables(records, labels, sets)
    if all(m in methods for m in (DEFAULT_EXTRACTIVE, TRUNCATION, DEFAULT_TOKEN, RANDOM, FULL)):
        lines += targets(records, sets)
    for challenger, baseline, budgets in COMPARISONS:
        if challenger in methods and baseline in methods:
            compared, printed = comparison(records, sets, challenger, baseline, budgets)
            lines += compared
            print("\n".join(printed))
    lines += overshoots_and_speed(records, labels, sets)
    if args.speed and "hotpot-bm25" in sets:
        timed = [m for m in (DEFAULT_EXTRACTIVE, DEFAULT_TOKEN) if m in methods]
        lines += batched_speed(load_devset("hotpot-bm25", args.part, limit=args.speed, seed=1), counter, tuple(timed))
    plot(records, labels, sets, args.name)
    lines += [f"![quality]({args.name}.png)", ""]
    print(write_results(args.name, "\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
