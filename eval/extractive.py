"""Extractive RAG compression: every method on the same HotpotQA / SQuAD v2 eval examples.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.extractive --hotpot 200 --squad 300

Writes eval/results/extractive.md and extractive.png (+ extractive-answer.png).

- HotpotQA eval split (distractor setting, 10 paragraphs): budgets 1/3, 1/6, 1/10 of the context's
  cl100k tokens; supporting-sentence recall (>= 80% of a gold sentence's characters kept) and answer
  recall (gold answer string in the output; yes/no answers skipped), overall and on bridge questions.
- SQuAD v2 eval split at 1/3 budget: answer recall on answerable questions, and how often the context
  comes back empty (selective augmentation) on unanswerable versus answerable questions. The
  thresholds are chosen on the SQuAD *train* split (10% of answerable train questions empty).
- Speed per 10-passage HotpotQA example for each scorer, with the share of time outside model forwards
  (measured with forward hooks), and batched `compress_many` against one call per query.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ctxzip import Budget
from ctxzip.budget import get_token_counter
from ctxzip.compressors.extractive import ExtractiveCompressor
from ctxzip.document import CompressionResult, Document, Span
from ctxzip.errors import BudgetTooSmallError, CtxzipError
from eval import datasets
from eval.metrics import answer_recall, bootstrap_ci, supporting_recall, text_supporting_recall
from eval.report import markdown_table, plot_quality_vs_ratio, write_results

RATIOS = (1 / 3, 1 / 6, 1 / 10)
LONGLLMLINGUA = "LongLLMLingua (llmlingua package, SmolLM2)"
RATIO_NAMES = {1 / 3: "1/3", 1 / 6: "1/6", 1 / 10: "1/10"}


# --- methods: each maps (documents, query, budgets) -> one CompressionResult-like per budget ------------


@dataclass
class Output:
    """What the metrics need from any method (ours return CompressionResult, LangChain does not)."""

    text: str
    kept: list[Span] | None  # None: text only (SR then counts words, see metrics.text_supporting_recall)
    tokens: int


def from_result(result: CompressionResult) -> Output:
    return Output(result.text, result.kept, result.compressed_tokens)


def ours(**options) -> Callable:
    compressor = ExtractiveCompressor(**options)

    def run(documents, query, budgets):
        try:
            return [from_result(r) for r in compressor.compress_budgets(documents, query, budgets)]
        except BudgetTooSmallError:  # some budget holds no sentence: that one gets no context
            outputs = []
            for budget in budgets:
                try:
                    outputs.append(from_result(compressor.compress(documents, query, budget)))
                except BudgetTooSmallError:
                    outputs.append(Output("", [], 0))
            return outputs

    run.compressor = compressor
    return run


def registry_method(name: str, **options) -> Callable:
    from ctxzip.registry import create_compressor

    compressor = create_compressor(name, **options)

    def run(documents, query, budgets):
        outputs = []
        for budget in budgets:
            try:
                outputs.append(from_result(compressor.compress(documents, query=query, budget=budget)))
            except CtxzipError:
                outputs.append(Output("", [], 0))
        return outputs

    return run


def longllmlingua(documents, query, budgets):
    """LongLLMLingua through the llmlingua package on SmolLM2 (the recipe from llmlingua's README),
    given each budget as its token target."""
    from eval.llmlingua_adapter import LONGLLMLINGUA_RECIPE, llmlingua1_compressor

    compressor = llmlingua1_compressor("smollm2")
    counter = get_token_counter("cl100k_base")
    outputs = []
    for budget in budgets:
        out = compressor.compress_prompt([d.text for d in documents], question=query, target_token=budget.tokens,
                                         **LONGLLMLINGUA_RECIPE)
        text = out["compressed_prompt"]
        outputs.append(Output(text, None, counter.count(text)))
    return outputs


def context_head_available() -> bool:
    from ctxzip.errors import ModelNotAvailableError
    from ctxzip.relevance.context_head import load_head

    try:
        load_head(None)
        return True
    except ModelNotAvailableError:
        return False


def full_context(documents, query, budgets):
    text = "\n\n".join(d.text for d in documents if d.text)
    return [Output(text, [Span(d.id, 0, len(d.text)) for d in documents], 0) for _ in budgets]


class MiniLMEmbeddings:
    """LangChain `Embeddings` over the same MiniLM as our bi-encoder (built lazily to import LangChain late)."""

    @staticmethod
    def create():
        from langchain_core.embeddings import Embeddings

        from ctxzip.models import load_sentence_encoder

        class _MiniLM(Embeddings):
            def embed_documents(self, texts):
                return load_sentence_encoder("minilm").encode(texts, normalize_embeddings=True, batch_size=128).tolist()

            def embed_query(self, text):
                return self.embed_documents([text])[0]

        return _MiniLM()


def _langchain_pipeline():
    """LangChain's recipe: split into sentences, drop redundant ones, rank by MiniLM similarity
    (`DocumentCompressorPipeline` of `CharacterTextSplitter`, `EmbeddingsRedundantFilter`,
    `EmbeddingsFilter`). LangChain has no token budget, so the ranked sentences are taken in order
    while the joined output fits."""
    import logging

    from langchain_classic.retrievers.document_compressors import DocumentCompressorPipeline, EmbeddingsFilter
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import CharacterTextSplitter

    logging.getLogger("langchain_text_splitters.base").setLevel(logging.ERROR)  # "chunk longer than 1" warnings
    embeddings = MiniLMEmbeddings.create()
    splitter = CharacterTextSplitter(separator=". ", chunk_size=1, chunk_overlap=0, add_start_index=True,
                                     keep_separator="end")
    stages = [splitter]
    try:
        from langchain_classic.document_transformers import EmbeddingsRedundantFilter

        stages.append(EmbeddingsRedundantFilter(embeddings=embeddings))
    except ImportError:
        pass
    stages.append(EmbeddingsFilter(embeddings=embeddings, k=10_000, similarity_threshold=None))
    pipeline = DocumentCompressorPipeline(transformers=stages)
    counter = get_token_counter("cl100k_base")

    def run(documents, query, budgets):
        lc_docs = [LCDocument(page_content=d.text, metadata={"doc_id": d.id}) for d in documents]
        ranked = pipeline.compress_documents(lc_docs, query)  # best first
        pieces = []
        for doc in ranked:
            doc_id, start = doc.metadata["doc_id"], doc.metadata.get("start_index", -1)
            if start is None or start < 0:
                continue
            pieces.append((doc_id, start, start + len(doc.page_content), doc.page_content))
        order = {d.id: i for i, d in enumerate(documents)}
        costs = counter.count_many([p[3] for p in pieces])
        outputs = []
        for budget in budgets:
            chosen, used = [], 0
            for piece, cost in zip(pieces, costs):  # greedy in relevance order while it fits (+1 per separator)
                if used + cost + 1 <= budget.tokens:
                    chosen.append(piece)
                    used += cost + 1
            chosen.sort(key=lambda p: (order[p[0]], p[1]))
            text = "\n\n".join(p[3] for p in chosen)
            while chosen and counter.count(text) > budget.tokens:  # joined text can cost more than the parts
                chosen.pop()
                text = "\n\n".join(p[3] for p in chosen)
            outputs.append(Output(text, [Span(p[0], p[1], p[2]) for p in chosen], counter.count(text)))
        return outputs

    return run


# --- HotpotQA --------------------------------------------------------------------------------------


def hotpot_rows(methods: dict[str, Callable], examples, counter, limits: dict[str, int]) -> tuple[list[dict], dict]:
    """Per (method, ratio) lists of per-example scores, in example order; `limits` runs a slow method
    on the first examples only (so its rows compare with the others' first entries)."""
    per: dict = {}
    seconds: dict[str, float] = {}
    for label, method in methods.items():
        started = time.perf_counter()
        chosen = examples[: limits.get(label, len(examples))]
        for ex in chosen:
            documents = ex.documents()
            original = counter.count("\n\n".join(d.text for d in documents))
            budgets = [Budget(tokens=max(1, int(r * original))) for r in RATIOS]
            outputs = method(documents, ex.question, budgets)
            gold = ex.supporting_spans()
            yes_no = ex.answer.strip().lower() in ("yes", "no")
            for ratio, budget, out in zip(RATIOS, budgets, outputs):
                cell = per.setdefault((label, ratio), {"sr": [], "ar": [], "sr_bridge": [], "ar_bridge": [],
                                                        "within": [], "ratio": []})
                if out.kept is None:
                    texts = {d.id: d.text for d in documents}
                    sr = text_supporting_recall([texts[d][s:e] for d, s, e in gold if d in texts], out.text)
                else:
                    sr = supporting_recall(gold, out.kept)
                ar = float("nan") if yes_no else answer_recall(ex.answer, out.text)
                cell["sr"].append(sr)
                cell["ar"].append(ar)
                if ex.type == "bridge":
                    cell["sr_bridge"].append(sr)
                    cell["ar_bridge"].append(ar)
                if label != "full context":
                    cell["within"].append(counter.count(out.text) <= budget.tokens)
                    cell["ratio"].append(counter.count(out.text) / max(1, original))
        seconds[label] = (time.perf_counter() - started) / max(1, len(chosen))
        print(f"hotpot {label}: {seconds[label]:.2f}s/example", flush=True)
    return per, seconds


def fmt_ci(values) -> str:
    mean, low, high = bootstrap_ci(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


# --- SQuAD v2 ----------------------------------------------------------------------------------


def squad_sample(split: str, n: int, answerable: bool, seed: int = 0):
    rows = datasets.load_squad(split, answerable=answerable)
    random.Random(seed).shuffle(rows)
    return rows[:n]


def threshold_from_train(options: dict, n: int, counter) -> float:
    """min_score leaving 10% of answerable *train* questions with an empty context."""
    compressor = ExtractiveCompressor(**options, min_score=float("-inf"))  # -inf: report max_score, drop nothing
    best = []
    for ex in squad_sample("train", n, True, seed=1):
        documents = [Document(ex.context, ex.id, {"title": ex.title})]
        result = compressor.compress_budgets(documents, ex.question, [Budget(ratio=1 / 3)])[0]
        task_scores = result.info.get("max_score")
        if task_scores is None:  # unchanged input: no scores
            continue
        best.append(task_scores)
    return float(np.quantile(best, 0.10))


# --- speed -------------------------------------------------------------------------------------


class ForwardTimer:
    """Adds up wall time inside a module's forward (pre/post hooks)."""

    def __init__(self, module) -> None:
        self.seconds = 0.0
        self._start = 0.0
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_):
        self._start = time.perf_counter()

    def _post(self, *_):
        self.seconds += time.perf_counter() - self._start


def speed_rows(examples) -> list[list]:
    from ctxzip.models import load_sentence_encoder
    from ctxzip.relevance.bi_encoder import clear_embedding_cache
    from ctxzip.relevance.paragraph_classifier import _load

    rows = []
    encoder_timer = ForwardTimer(load_sentence_encoder("minilm", "auto")[0])  # the Transformer module: forward only
    classifier_timer = ForwardTimer(_load(None, "auto")[0])
    configs = [
        ("bm25 (rounds=2)", dict(scorer="bm25"), None),
        ("bi-encoder (rounds=2)", dict(scorer="bi_encoder"), encoder_timer),
        ("fine-tuned classifier (rounds=1)", dict(scorer="classifier", rounds=1), classifier_timer),
        ("context head (rounds=1)", dict(scorer="context", rounds=1), encoder_timer),
        ("context head (rounds=2)", dict(scorer="context"), encoder_timer),
    ]
    configs = [c for c in configs if c[1].get("scorer") != "context" or context_head_available()]
    budget = Budget(ratio=1 / 3)
    for label, options, timer in configs:
        compressor = ExtractiveCompressor(**options)
        compressor.compress(examples[0].documents(), examples[0].question, budget)  # warm-up (model load)
        clear_embedding_cache()  # time real forwards, not the cache
        if timer:
            timer.seconds = 0.0
        started = time.perf_counter()
        for ex in examples:
            compressor.compress(ex.documents(), ex.question, budget)
        total = time.perf_counter() - started
        forward = timer.seconds if timer else 0.0
        timer and setattr(timer, "seconds", 0.0)
        clear_embedding_cache()
        started = time.perf_counter()
        compressor.compress_many([(ex.documents(), ex.question) for ex in examples], budget)
        batched = time.perf_counter() - started
        forward_batched = timer.seconds if timer else 0.0
        outside = "n/a (no model)" if not timer else f"{(total - forward) / total:.1%}"
        outside_batched = "n/a (no model)" if not timer else f"{(batched - forward_batched) / batched:.1%}"
        rows.append([label, f"{1000 * total / len(examples):.0f}", outside, f"{1000 * batched / len(examples):.0f}",
                     outside_batched])
        print("speed", rows[-1], flush=True)
    return rows


# --- main --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hotpot", type=int, default=200, help="HotpotQA eval examples (a fixed seeded sample)")
    parser.add_argument("--squad", type=int, default=300, help="SQuAD v2 eval questions of each kind")
    parser.add_argument("--speed", type=int, default=20, help="HotpotQA examples timed per scorer")
    parser.add_argument("--threshold-examples", type=int, default=200)
    parser.add_argument("--skip", default="", help="method labels to leave out, separated by ;")
    parser.add_argument("--longllmlingua", type=int, default=20, help="HotpotQA examples for LongLLMLingua (slow)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    counter = get_token_counter("cl100k_base")
    hotpot = datasets.load_hotpotqa("eval")
    random.Random(0).shuffle(hotpot)
    hotpot = hotpot[: args.hotpot]

    methods: dict[str, Callable] = {
        "full context": full_context,
        "truncation (head)": registry_method("truncate", keep="head", unit="word"),
        "random sentences": registry_method("random", unit="sentence", seed=0),
        "BM25 sentences": ours(scorer=_plain_bm25(), rounds=1, deduplicate=False),
        "LangChain EmbeddingsFilter (MiniLM)": _langchain_pipeline(),
        "ours: BM25+titles, 2 rounds": ours(scorer="bm25"),
        "ours: bi-encoder, 1 round": ours(scorer="bi_encoder", rounds=1),
        "ours: bi-encoder, 2 rounds": ours(scorer="bi_encoder"),
        "ours: fine-tuned MiniLM classifier, 1 round": ours(scorer="classifier", rounds=1),
        "ours: context head, 1 round": ours(scorer="context", rounds=1),
        "ours: context head, 2 rounds": ours(scorer="context"),
        LONGLLMLINGUA: longllmlingua,
    }
    skip = set(filter(None, (s.strip() for s in args.skip.split(";"))))
    if not context_head_available():  # not trained yet: leave its rows out rather than fail
        skip |= {k for k in methods if "context head" in k}
    methods = {k: v for k, v in methods.items() if k not in skip}
    limits = {LONGLLMLINGUA: args.longllmlingua}
    if not args.longllmlingua:
        methods.pop(LONGLLMLINGUA, None)
    per, seconds = hotpot_rows(methods, hotpot, counter, limits)

    lines = ["# Extractive compression (issue 10)", "",
             f"HotpotQA eval split (distractor, 10 paragraphs), {len(hotpot)} questions sampled with seed 0 "
             f"({sum(e.type == 'bridge' for e in hotpot)} bridge). Budget = ratio x the context's cl100k tokens. "
             "SR = supporting-sentence recall (a gold sentence counts when >= 80% of its characters are kept); "
             "AR = answer recall (gold answer string in the output, yes/no answers skipped). "
             "Means with 95% bootstrap intervals.", ""]
    for ratio in RATIOS:
        rows = []
        for label in methods:
            cell = per[(label, ratio)]
            rows.append([label, fmt_ci(cell["sr"]), fmt_ci(cell["ar"]), f"{np.nanmean(cell['sr_bridge']):.3f}",
                         f"{np.nanmean(cell['ar_bridge']):.3f}",
                         f"{np.mean(cell['ratio']):.3f}" if cell["ratio"] else "1.000",
                         f"{np.mean(cell['within']):.0%}" if cell["within"] else "-", len(cell["sr"])])
        lines += [f"## HotpotQA, budget {RATIO_NAMES[ratio]}", "",
                  markdown_table(["method", "SR", "AR", "SR bridge", "AR bridge", "achieved ratio", "within budget", "n"],
                                 rows), ""]
        if LONGLLMLINGUA in methods:
            n = len(per[(LONGLLMLINGUA, ratio)]["sr"])
            same = [[label, fmt_ci(per[(label, ratio)]["sr"][:n]), fmt_ci(per[(label, ratio)]["ar"][:n])]
                    for label in methods if label != LONGLLMLINGUA]
            lines += [f"On the {n} examples LongLLMLingua ran on (its SR counts a gold sentence when 80% of its words "
                      "occur anywhere in the output, since llmlingua returns rewritten text, not spans):", "",
                      markdown_table(["method", f"SR (first {n})", f"AR (first {n})"],
                                     same + [[LONGLLMLINGUA, fmt_ci(per[(LONGLLMLINGUA, ratio)]["sr"]),
                                              fmt_ci(per[(LONGLLMLINGUA, ratio)]["ar"])]]), ""]
    lines += ["Seconds per example (all three budgets; ours score once per example):", "",
              markdown_table(["method", "s/example"], [[k, f"{v:.3f}"] for k, v in seconds.items()]), ""]

    plot_quality_vs_ratio("extractive", {k: [(r, np.nanmean(per[(k, r)]["sr"])) for r in RATIOS]
                                         for k in methods if k != "full context"},
                          "supporting-sentence recall", "HotpotQA eval: supporting-sentence recall vs budget")
    plot_quality_vs_ratio("extractive-answer", {k: [(r, np.nanmean(per[(k, r)]["ar"])) for r in RATIOS]
                                                for k in methods},
                          "answer recall", "HotpotQA eval: answer recall vs budget")
    lines += ["![SR](extractive.png) ![AR](extractive-answer.png)", ""]
    write_results("extractive", "\n".join(lines + ["_(SQuAD and speed sections still running.)_"]))

    if args.squad:
        lines += squad_section(args, counter)
        write_results("extractive", "\n".join(lines + ["_(speed section still running.)_"]))
    if args.speed:
        speed = speed_rows(hotpot[: args.speed])
        lines += ["## Speed", "",
                  f"{args.speed} HotpotQA eval examples (10 passages each), budget 1/3, CPU, 2 torch threads, "
                  "timed under the heavy-job lock. 'Outside forwards' = share of the compress time not spent in the "
                  "model's forward (hooks on the encoder module); tokenization, segmentation, BM25, dedup and the "
                  "solver count as outside.", "",
                  markdown_table(["scorer", "ms/example, one call each", "outside forwards",
                                  "ms/example, compress_many batch", "outside forwards (batched)"], speed), ""]
    path = write_results("extractive", "\n".join(lines))
    print(path)
    return 0


def _plain_bm25():
    from ctxzip.relevance.bm25 import BM25Scorer

    return BM25Scorer(with_title=False)


def squad_section(args, counter) -> list[str]:
    answerable = squad_sample("eval", args.squad, True)
    unanswerable = squad_sample("eval", args.squad, False)
    configs = {
        "random sentences": (registry_method("random", unit="sentence", seed=0), None),
        "BM25 sentences": (ours(scorer=_plain_bm25(), rounds=1, deduplicate=False), None),
        "ours: bi-encoder": (None, dict(scorer="bi_encoder", rounds=1)),
        "ours: fine-tuned MiniLM classifier": (None, dict(scorer="classifier", rounds=1)),
        "ours: context head": (None, dict(scorer="context", rounds=1)),
    }
    configs = {k: v for k, v in configs.items() if "context head" not in k or context_head_available()}
    rows = []
    for label, (method, options) in configs.items():
        threshold = None
        if options is not None:
            threshold = threshold_from_train(options, args.threshold_examples, counter)
            method = ours(**options, min_score=threshold)
        recall, empty_answerable, empty_unanswerable = [], [], []
        for group, flags in ((answerable, empty_answerable), (unanswerable, empty_unanswerable)):
            for ex in group:
                documents = [Document(ex.context, ex.id, {"title": ex.title})]
                out = method(documents, ex.question, [Budget(ratio=1 / 3)])[0]
                flags.append(float(out.text.strip() == ""))
                if group is answerable:
                    recall.append(answer_recall(ex.answers, out.text))
        rows.append([label, "-" if threshold is None else f"{threshold:.3f}", fmt_ci(recall),
                     f"{np.mean(empty_answerable):.1%}", f"{np.mean(empty_unanswerable):.1%}"])
        print("squad", rows[-1], flush=True)
    return ["## SQuAD v2, budget 1/3", "",
            f"SQuAD v2 eval split: {len(answerable)} answerable and {len(unanswerable)} unanswerable questions "
            "(seeded sample). Thresholds (min_score) are set on the SQuAD train split so that 10% of answerable "
            "train questions get an empty context; methods without a threshold never return an empty context.", "",
            markdown_table(["method", "min_score", "AR (answerable)", "empty (answerable)", "empty (unanswerable)"],
                           rows), ""]


if __name__ == "__main__":
    raise SystemExit(main())
