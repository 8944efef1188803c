"""PerplexityCompressor against llmlingua's LLMLingua-1 and LongLLMLingua, same SmolLM2-135M-Instruct, same examples.

Answer recall (the gold answer survives in the compressed context) at ratios 0.5 and 0.33 on small,
stated subsamples of the HotpotQA and SQuAD eval splits, time per example, and budget compliance
(cl100k tokens of the output against floor(ratio * original tokens)). llmlingua 0.2.2 runs through
eval/llmlingua_adapter.py (tuple <-> DynamicCache wrapper of the model forward).

    .venv/bin/python -m eval.perplexity_quality [--hotpotqa 8 --squad 8 --method-seconds 300]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

RATIOS = (0.5, 0.33)


def load_examples(n_hotpot: int, n_squad: int):
    """(dataset, id, documents as strings, question, answers) from the eval splits, in split order."""
    from eval.datasets import load_hotpotqa, load_squad

    hotpot = [e for e in load_hotpotqa("eval", limit=n_hotpot * 3) if e.answer.strip().lower() not in ("yes", "no")]
    hotpot = [("hotpotqa", e.id, [d.text for d in e.documents()], e.question, [e.answer]) for e in hotpot[:n_hotpot]]
    squad = [("squad", e.id, [e.context], e.question, e.answers) for e in load_squad("eval", limit=n_squad, answerable=True)]
    # Interleaved, so a method cut short by its time cap still has both data sets.
    out = []
    for i in range(max(len(hotpot), len(squad))):
        out += hotpot[i : i + 1] + squad[i : i + 1]
    return out


def ctxzip_method(**options):
    from ctxzip import Budget
    from ctxzip.compressors.perplexity import PerplexityCompressor

    compressor = PerplexityCompressor(**options)

    def compress(documents, question, ratio, target):
        return compressor.compress(documents, query=question, budget=Budget(tokens=target)).text

    return compress


def llmlingua_method(long: bool):
    from eval.llmlingua_adapter import LONGLLMLINGUA_RECIPE, llmlingua1_compressor

    compressor = llmlingua1_compressor("smollm2")

    def compress(documents, question, ratio, target):
        if long:
            out = compressor.compress_prompt(documents, question=question, rate=ratio, **LONGLLMLINGUA_RECIPE)
        else:
            out = compressor.compress_prompt(documents, rate=ratio)
        return out["compressed_prompt"]

    return compress


METHODS = {
    "ctxzip perplexity (contrastive + relevance)": lambda: ctxzip_method(query_mode="contrastive"),
    "ctxzip perplexity (relevance only)": lambda: ctxzip_method(query_mode="relevance"),
    "llmlingua LLMLingua-1": lambda: llmlingua_method(long=False),
    "llmlingua LongLLMLingua": lambda: llmlingua_method(long=True),
}


def evaluate(examples, method_seconds: float, on_method=None) -> list[dict]:
    from ctxzip.budget import get_token_counter
    from eval.metrics import answer_recall

    counter = get_token_counter("cl100k_base")
    rows = []
    for label, build in METHODS.items():
        compress = build()
        compress(["A short warm-up text about nothing in particular. " * 5], "What?", 0.5, 20)
        spent, stopped = 0.0, False
        results = {}
        for dataset, ex_id, documents, question, answers in examples:
            if spent > method_seconds:
                stopped = True
                break
            for ratio in RATIOS:
                original = counter.count("\n\n".join(documents))
                target = max(1, math.floor(ratio * original))
                started = time.perf_counter()
                try:
                    text = compress(documents, question, ratio, target)
                    error = None
                except Exception as exc:  # a baseline failing is a result too
                    text, error = "", f"{type(exc).__name__}: {exc}"[:200]
                seconds = time.perf_counter() - started
                spent += seconds
                tokens = counter.count(text)
                results.setdefault((dataset, ratio), []).append(
                    {"id": ex_id, "recall": answer_recall(answers, text), "seconds": seconds, "tokens": tokens,
                     "target": target, "original": original, "error": error}
                )
        for (dataset, ratio), items in results.items():
            rows.append({
                "method": label, "dataset": dataset, "ratio": ratio, "examples": len(items),
                "recall": float(np.mean([i["recall"] for i in items])),
                "seconds": float(np.mean([i["seconds"] for i in items])),
                "achieved": float(np.mean([i["tokens"] / i["original"] for i in items])),
                "over": int(sum(i["tokens"] > i["target"] for i in items)),
                "max_over": max(i["tokens"] / i["target"] - 1 for i in items),
                "errors": sorted({i["error"] for i in items if i["error"]}),
                "stopped": stopped, "items": items,
            })
            print({k: v for k, v in rows[-1].items() if k != "items"}, flush=True)
        if on_method is not None:
            on_method(rows)
    return rows


def render(rows, examples, args) -> str:
    from eval.report import markdown_table

    n_hotpot = sum(e[0] == "hotpotqa" for e in examples)
    n_squad = sum(e[0] == "squad" for e in examples)
    lines = [
        "# Perplexity compressor vs llmlingua LLMLingua-1 / LongLLMLingua (SmolLM2-135M-Instruct, CPU)",
        "",
        f"Command: `flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.perplexity_quality --hotpotqa {args.hotpotqa} --squad {args.squad} --method-seconds {args.method_seconds:g}`.",
        f"Examples: the first {n_hotpot} HotpotQA eval questions whose answer is not yes/no (10 paragraphs each, distractor setting) and the first {n_squad}",
        "answerable SQuAD v2 eval questions (one paragraph each). Answer recall = a gold answer appears in the compressed text (SQuAD normalisation).",
        "Budget = floor(ratio x cl100k tokens of the input); ctxzip gets it as Budget(tokens=...), llmlingua as rate=ratio (its own target).",
        "\"over budget\" counts outputs with more cl100k tokens than that budget; \"max overshoot\" is the worst relative excess.",
        f"Each method gets at most {args.method_seconds:g} s in total; a method cut short says so. CPU shared with other jobs (2 cores), fp32.",
        "",
    ]
    table = []
    for r in rows:
        table.append([r["method"], r["dataset"], r["ratio"], r["examples"], f"{r['recall']:.3f}", f"{r['seconds']:.2f}",
                      f"{r['achieved']:.3f}", r["over"], f"{100 * max(0.0, r['max_over']):.1f}%",
                      ("cut short; " if r["stopped"] else "") + "; ".join(r["errors"])])
    lines.append(markdown_table(
        ["method", "dataset", "ratio", "examples", "answer recall", "s / example", "achieved ratio", "over budget", "max overshoot", "notes"], table))
    # Speed ratios on the same (dataset, ratio) cells.
    base = {(r["dataset"], r["ratio"]): r for r in rows if r["method"].startswith("ctxzip perplexity (contrastive")}
    ratio_lines = []
    for r in rows:
        ours = base.get((r["dataset"], r["ratio"]))
        if not ours or r is ours:
            continue
        common = {i["id"] for i in r["items"]} & {i["id"] for i in ours["items"]}
        if not common:
            continue
        mine = [i for i in ours["items"] if i["id"] in common]
        theirs = [i for i in r["items"] if i["id"] in common]
        time_ratio = np.mean([i["seconds"] for i in theirs]) / np.mean([i["seconds"] for i in mine])
        ratio_lines.append(
            f"| {r['method']} | {r['dataset']} | {r['ratio']} | {len(common)} | {time_ratio:.2f}x | "
            f"{np.mean([i['recall'] for i in theirs]):.3f} | {np.mean([i['recall'] for i in mine]):.3f} |")
    if ratio_lines:
        lines += ["", "## On the same examples: other method vs ctxzip perplexity (contrastive + relevance)", "",
                  "| method | dataset | ratio | common examples | time per example, other / ctxzip | other's recall | ctxzip recall |",
                  "|---|---|---|---|---|---|---|"] + ratio_lines
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hotpotqa", type=int, default=6)
    parser.add_argument("--squad", type=int, default=6)
    parser.add_argument("--method-seconds", type=float, default=150.0)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    wanted = set(args.methods.split(","))
    for name in list(METHODS):
        if name not in wanted:
            del METHODS[name]
    examples = load_examples(args.hotpotqa, args.squad)
    from eval.report import write_results

    # Written after each method, so a run cut short still leaves what it measured.
    rows = evaluate(examples, args.method_seconds, lambda done: write_results("perplexity_quality", render(done, examples, args)))
    print(write_results("perplexity_quality", render(rows, examples, args)))


if __name__ == "__main__":
    main()
