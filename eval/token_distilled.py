"""Issue 4's comparison: the distilled token classifier, its question-aware variant, its teacher and baselines.

`python -m eval.token_distilled --limit 40` writes eval/results/token_distilled.md and a plot per data set.
Every method compresses the same examples at the same budgets (ratios 0.5 and 0.33 of each example's
cl100k tokens). Metrics: answer recall (the gold answer string survives) and the answer's log-likelihood
under SmolLM2-135M-Instruct, normalised as (NLL_none - NLL_compressed) / (NLL_none - NLL_full), with 95%
bootstrap intervals; time per example.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass

import numpy as np

from ctxzip import Budget, create_compressor
from ctxzip.compressors.base import ScoringCompressor
from ctxzip.segment import split_documents
from ctxzip.document import Document
from ctxzip.select import Units
from eval import datasets
from eval.metrics import answer_recall, bootstrap_ci
from eval.reader import AnswerScorer, bootstrap_gain
from eval.report import markdown_table, plot_quality_vs_ratio, write_results


@dataclass
class StopWordCompressor(ScoringCompressor):
    """Baseline: drop English stop words first (scikit-learn's list), then words at random."""

    seed: int = 0
    method = "stopwords"

    def score_units(self, request) -> Units:
        documents = request.documents
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        doc, start, end = split_documents(documents, "word")
        words = [documents[d].text[s:e].strip().lower().strip(".,;:!?\"'()") for d, s, e in zip(doc, start, end)]
        content = np.array([w not in ENGLISH_STOP_WORDS for w in words], dtype=float)
        return Units.build(doc, start, end, content + 0.5 * np.random.default_rng(self.seed).random(len(doc)))


@dataclass
class Case:
    id: str
    documents: list[Document]
    query: str | None
    answers: list[str]  # what answer recall looks for
    reader_question: str
    reader_answer: str


def hotpotqa_cases(limit: int) -> list[Case]:
    out = []
    for ex in datasets.load_hotpotqa("eval"):
        if ex.answer.lower() in ("yes", "no"):
            continue
        out.append(Case(ex.id, ex.documents(), ex.question, [ex.answer], ex.question, ex.answer))
        if len(out) >= limit:
            break
    return out


def squad_cases(limit: int) -> list[Case]:
    return [Case(ex.id, [Document(ex.context, ex.id)], ex.question, ex.answers, ex.question, ex.answers[0])
            for ex in datasets.load_squad("eval", answerable=True, limit=limit)]


def gsm8k_cases(limit: int) -> list[Case]:
    """One prompt (8 exemplars) compressed once; the reader answers `limit` test questions after it.
    Answer recall = share of the exemplars' final answers that survive."""
    prompt = datasets.load_gsm8k_prompt()
    finals = re.findall(r"The answer is (\S+?)\.?\s*$", prompt, flags=re.M)
    tests = datasets.load_gsm8k("eval", limit=limit)
    return [Case(f"gsm8k-prompt-{t.id}", [Document(prompt, "gsm8k-prompt")], None, finals, t.question,
                 t.meta["solution"].replace("####", "The answer is")) for t in tests]


def methods(include_llmlingua: bool) -> dict:
    table = {
        "distilled (lingua-minilm-v1)": lambda: create_compressor("token", model="ctxzip/lingua-minilm-v1",
                                                                  question_model=None),
        "question-aware (lingua-minilm-qa-v1)": lambda: create_compressor("token", model="ctxzip/lingua-minilm-qa-v1",
                                                                           question_model="ctxzip/lingua-minilm-qa-v1"),
        "teacher (perplexity, SmolLM2)": lambda: create_compressor("perplexity"),
        "truncate (head)": lambda: create_compressor("truncate"),
        "random words": lambda: create_compressor("random"),
        "stop-word removal": lambda: StopWordCompressor(),
    }
    if include_llmlingua:
        from eval.llmlingua_adapter import LLMLingua1Compressor

        table["llmlingua LLMLingua-1 (SmolLM2)"] = lambda: LLMLingua1Compressor()
    return table


def evaluate(name: str, cases: list[Case], ratios: list[float], table: dict, scorer: AnswerScorer) -> tuple[list, dict]:
    counter = Budget(tokens=1).counter
    full_text = {c.id: "\n\n".join(d.text for d in c.documents) for c in cases}
    none = np.array([scorer.nll("", c.reader_question, c.reader_answer) for c in cases])
    full = np.array([scorer.nll(full_text[c.id], c.reader_question, c.reader_answer) for c in cases])
    full_recall = [np.mean([answer_recall(a, full_text[c.id]) for a in c.answers]) for c in cases]
    rows = [["full context", 1.0, f"{np.mean(full_recall):.3f}", "1.000", "-", "-"]]
    series: dict[str, list] = {}
    cache: dict = {}
    for label, factory in table.items():
        compressor = factory()
        warm = cases[0]  # models load (and int8 exports happen) before any timing
        compressor.compress(warm.documents, query=warm.query, budget=Budget(tokens=max(1, counter.count(full_text[warm.id]) // 2)))
        for ratio in ratios:
            recalls, nlls, seconds, within = [], [], [], 0
            for c in cases:
                budget = Budget(tokens=max(1, int(ratio * counter.count(full_text[c.id]))))
                key = (label, ratio, full_text[c.id], c.query)
                started = time.perf_counter()
                if key not in cache:  # the GSM8K prompt is the same for every test question
                    cache[key] = compressor.compress(c.documents, query=c.query, budget=budget)
                    seconds.append(time.perf_counter() - started)
                result = cache[key]
                within += result.compressed_tokens <= budget.tokens
                recalls.append(np.mean([answer_recall(a, result.text) for a in c.answers]))
                nlls.append(scorer.nll(result.text, c.reader_question, c.reader_answer))
            r_mean, r_low, r_high = bootstrap_ci(recalls)
            gain, g_low, g_high = bootstrap_gain(none, full, np.array(nlls))
            rows.append([label, ratio, f"{r_mean:.3f} [{r_low:.3f}, {r_high:.3f}]",
                         f"{gain:.3f} [{g_low:.3f}, {g_high:.3f}]", f"{np.mean(seconds):.3f}",
                         f"{within}/{len(cases)}"])
            series.setdefault(label, []).append((ratio, gain))
            print(name, rows[-1], flush=True)
    return rows, series


def load_seconds() -> float:
    """Seconds for a fresh process to build TokenClassifierCompressor() and load its model (caches warm)."""
    import subprocess
    import sys

    code = ("import time; t = time.perf_counter(); "
            "from ctxzip.compressors.token_classifier import TokenClassifierCompressor; "
            "TokenClassifierCompressor().classifier; print(time.perf_counter() - t)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)  # merges/exports once
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=40, help="examples per data set")
    parser.add_argument("--ratios", default="0.5,0.33")
    parser.add_argument("--sets", default="hotpotqa,squad,gsm8k")
    parser.add_argument("--no-llmlingua", action="store_true")
    parser.add_argument("--load-time", action="store_true", help="only print the default model's load time")
    args = parser.parse_args(argv)
    if args.load_time:
        print(f"TokenClassifierCompressor() load, fresh process, caches warm: {load_seconds():.2f} s")
        return
    ratios = [float(r) for r in args.ratios.split(",")]
    table = methods(not args.no_llmlingua)
    scorer = AnswerScorer(max_tokens=3072)
    loaders = {"hotpotqa": hotpotqa_cases, "squad": squad_cases, "gsm8k": gsm8k_cases}
    header = ["method", "ratio", "answer recall [95% CI]", "normalised answer log-lik. [95% CI]",
              "s / example", "within budget"]
    sections = [f"Loading `TokenClassifierCompressor()` (the default model) in a fresh process, caches warm: "
                f"{load_seconds():.2f} s.\n"]
    for name in args.sets.split(","):
        cases = loaders[name](args.limit if name != "gsm8k" else min(args.limit, 20))
        rows, series = evaluate(name, cases, ratios, table, scorer)
        plot = plot_quality_vs_ratio(f"token_distilled_{name}", series, "normalised answer log-likelihood",
                                     f"{name}: answer log-likelihood vs budget")
        sections.append(f"## {name} ({len(cases)} examples)\n\n{markdown_table(header, rows)}\n\n![{name}]({plot.name})\n")
    write_results("token_distilled", "# Distilled token classifier (issue 4)\n\n"
                  f"Command: `python -m eval.token_distilled --limit {args.limit} --ratios {args.ratios} --sets {args.sets}"
                  f"{' --no-llmlingua' if args.no_llmlingua else ''}`\n\n{__doc__}\n" + "\n".join(sections))


if __name__ == "__main__":
    main()
