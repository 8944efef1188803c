"""Run several compressors on the same examples at several ratios and aggregate the metrics.

A *task* turns a data set into (documents, query, scorer) triples; the scorer maps a
CompressionResult to metric values. Every method sees exactly the same examples and budgets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ctxzip.budget import Budget
from ctxzip.document import CompressionResult, Document
from ctxzip.errors import CtxzipError
from ctxzip.registry import create_compressor
from eval import datasets
from eval.metrics import answer_recall, bootstrap_ci, supporting_recall


@dataclass
class Case:
    id: str
    documents: list[Document]
    query: str | None
    score: Callable[[CompressionResult], dict[str, float]]


@dataclass
class MethodSpec:
    label: str
    name: str
    options: dict = field(default_factory=dict)

    def build(self):
        return create_compressor(self.name, **self.options)


def parse_methods(text: str) -> list[MethodSpec]:
    """"truncate,random:unit=sentence;seed=1" -> specs; option values are ints/floats when they parse."""
    specs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, opts = item.partition(":")
        options = {}
        for pair in filter(None, opts.split(";")):
            key, _, value = pair.partition("=")
            for cast in (int, float):
                try:
                    value = cast(value)
                    break
                except ValueError:
                    pass
            options[key] = value
        specs.append(MethodSpec(item, name, options))
    return specs


def hotpotqa_cases(split: str = "eval", limit: int | None = None) -> list[Case]:
    cases = []
    for ex in datasets.load_hotpotqa(split, limit=limit):
        gold = ex.supporting_spans()
        yes_no = ex.answer.strip().lower() in ("yes", "no")

        def score(result, ex=ex, gold=gold, yes_no=yes_no):
            return {
                # yes/no answers are not in the context, so answer recall skips them
                "answer_recall": float("nan") if yes_no else answer_recall(ex.answer, result.text),
                "supporting_recall": supporting_recall(gold, result.kept),
            }

        cases.append(Case(ex.id, ex.documents(), ex.question, score))
    return cases


def squad_cases(split: str = "eval", limit: int | None = None) -> list[Case]:
    cases = []
    for ex in datasets.load_squad(split, limit=limit, answerable=True):
        cases.append(Case(ex.id, [Document(ex.context, ex.id)], ex.question,
                          lambda result, ex=ex: {"answer_recall": answer_recall(ex.answers, result.text)}))
    return cases


TASKS = {"hotpotqa": hotpotqa_cases, "squad": squad_cases}


def run(cases: list[Case], methods: list[MethodSpec], ratios: Iterable[float], tokenizer: str = "cl100k_base") -> list[dict]:
    """One row per (method, ratio) with mean metrics, bootstrap CIs, compliance and speed."""
    counter = Budget(tokens=1, tokenizer=tokenizer).counter
    rows = []
    for spec in methods:
        compressor = spec.build()
        for ratio in ratios:
            per_case: dict[str, list[float]] = {}
            seconds, tokens_in, within, achieved, errors = 0.0, 0, 0, [], 0
            for case in cases:
                original = counter.count("\n\n".join(d.text for d in case.documents if d.text))
                budget = Budget(tokens=max(1, int(ratio * original)), tokenizer=tokenizer)
                started = time.perf_counter()
                try:
                    result = compressor.compress(case.documents, query=case.query, budget=budget)
                except CtxzipError:
                    errors += 1
                    continue
                seconds += time.perf_counter() - started
                tokens_in += result.original_tokens
                within += result.compressed_tokens <= budget.tokens
                achieved.append(result.ratio)
                for key, value in case.score(result).items():
                    per_case.setdefault(key, []).append(value)
            row = {"method": spec.label, "ratio": ratio, "examples": len(cases) - errors, "errors": errors}
            for key, values in per_case.items():
                mean, low, high = bootstrap_ci(values)
                row[key] = mean
                row[f"{key}_ci"] = (low, high)
            done = max(1, len(cases) - errors)
            row.update(
                achieved_ratio=float(np.mean(achieved)) if achieved else float("nan"),
                within_budget=within / done,
                seconds_per_example=seconds / done,
                tokens_per_second=tokens_in / seconds if seconds else float("nan"),
            )
            rows.append(row)
    return rows
