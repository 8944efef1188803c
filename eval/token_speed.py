"""Token-classifier speed and budget compliance: llmlingua's LLMLingua-2 vs ctxzip's `token` method.

Same checkpoint for both: the embedded distilled model ctxzip/lingua-minilm-v1 (MiniLM-L6 with a
trained keep/drop head), copied under a folder name llmlingua accepts. llmlingua cuts 512-token
chunks; ctxzip uses the 256-token windows the model was trained on. Same inputs: HotpotQA eval
paragraphs concatenated to about 2k, 8k and 32k cl100k tokens. Each (implementation, size) runs in
its own process so peak memory (max RSS, model included) is its own.

    .venv/bin/python -m eval.token_speed                 # everything, writes eval/results/token_speed.md
    .venv/bin/python -m eval.token_speed --quick         # smaller subsets
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

SIZES = (2_000, 8_000, 32_000)
RATIO = 0.33
VARIANTS = {
    "llmlingua": {},
    "ctxzip fp32": {"quantize": None},
    "ctxzip int8 torch": {"quantize": "int8", "backend": "torch"},
    "ctxzip int8 onnxruntime (default)": {"quantize": "int8", "backend": "onnx"},
}


def bench_text(tokens: int) -> str:
    """HotpotQA eval paragraphs joined until `tokens` cl100k tokens, cut at a paragraph end."""
    from ctxzip.budget import get_token_counter
    from eval.datasets import load_hotpotqa

    counter = get_token_counter("cl100k_base")
    parts, total = [], 0
    for example in load_hotpotqa("eval", limit=2000):
        for paragraph in example.paragraphs:
            text = f"{paragraph.title}\n{paragraph.text}"
            parts.append(text)
            total += counter.count(text) + 1
            if total >= tokens:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


class ForwardTimer:
    """Wraps a model's forward and adds up the wall time spent inside it."""

    def __init__(self, model, attribute: str = "forward") -> None:
        self.seconds = 0.0
        forward = getattr(model, attribute)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return forward(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        setattr(model, attribute, timed)


def run_one(variant: str, tokens: int, repeats: int) -> dict:
    """Time one implementation on one input size (called in a fresh process)."""
    from ctxzip import Budget
    from ctxzip.budget import get_token_counter
    from eval.llmlingua_adapter import llmlingua2_compressor, distilled_llmlingua2_checkpoint

    path = distilled_llmlingua2_checkpoint()
    text = bench_text(tokens)
    counter = get_token_counter("cl100k_base")
    n_tokens = counter.count(text)
    warm = bench_text(600)
    if variant == "llmlingua":
        compressor = llmlingua2_compressor(path)
        timer = ForwardTimer(compressor.model)

        def compress(t):
            out = compressor.compress_prompt_llmlingua2([t], rate=RATIO)
            return out["compressed_prompt"]
    else:
        from ctxzip.compressors.token_classifier import TokenClassifierCompressor

        compressor = TokenClassifierCompressor(model=path, **VARIANTS[variant])
        timer = ForwardTimer(compressor.classifier, "forward_probabilities")

        def compress(t):
            return compressor.compress(t, budget=Budget(ratio=RATIO)).text

    compress(warm)  # first-call costs (allocator, thread pools) are not the method's
    times, forward = [], []
    for _ in range(repeats):
        timer.seconds = 0.0
        started = time.perf_counter()
        output = compress(text)
        times.append(time.perf_counter() - started)
        forward.append(timer.seconds)
    best = int(np.argmin(times))
    return {
        "variant": variant, "target": tokens, "tokens": n_tokens, "seconds": times[best],
        "forward_seconds": forward[best], "output_tokens": counter.count(output),
        "budget": int(RATIO * n_tokens), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def speed_rows(sizes, repeats: int, rounds: int) -> list[dict]:
    """Every (size, variant) once per round, each in a fresh process; rounds interleave the variants so
    that load from other jobs falls on all of them alike, and the spread over rounds shows how much
    the numbers move."""
    rows = []
    for round_index in range(rounds):
        for tokens in sizes:
            for variant in VARIANTS:
                count = repeats if tokens <= 2_000 else 1  # the longer runs are long enough to be stable
                command = [sys.executable, "-m", "eval.token_speed", "--one", variant, str(tokens), "--repeats", str(count)]
                done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                if done.returncode != 0:
                    raise RuntimeError(f"{variant} at {tokens} failed:\n{done.stderr[-3000:]}")
                row = {**json.loads(done.stdout.strip().splitlines()[-1]), "round": round_index}
                print(row, flush=True)
                rows.append(row)
    return rows


# Word-level mode (no sentence cascade), so the rows differ only in the forward.
RECALL_VARIANTS = {
    "fp32": {"quantize": None, "cascade": False},
    "int8 torch": {"quantize": "int8", "backend": "torch", "cascade": False},
    "int8 onnxruntime (default)": {"quantize": "int8", "backend": "onnx", "cascade": False},
}


def recall_rows(limit: int) -> list[dict]:
    """Answer recall on HotpotQA eval at RATIO for each forward, and how much of fp32's selection each keeps."""
    from ctxzip import Budget
    from ctxzip.compressors.token_classifier import TokenClassifierCompressor
    from eval.datasets import load_hotpotqa
    from eval.llmlingua_adapter import distilled_llmlingua2_checkpoint
    from eval.metrics import answer_recall, bootstrap_ci

    path = distilled_llmlingua2_checkpoint()
    examples = [e for e in load_hotpotqa("eval", limit=limit * 2) if e.answer.strip().lower() not in ("yes", "no")][:limit]
    kept: dict[str, list] = {}
    rows = []
    for label, options in RECALL_VARIANTS.items():
        compressor = TokenClassifierCompressor(model=path, **options)
        recalls, spans, seconds = [], [], 0.0
        for example in examples:
            started = time.perf_counter()
            result = compressor.compress(example.documents(), query=example.question, budget=Budget(ratio=RATIO))
            seconds += time.perf_counter() - started
            recalls.append(answer_recall(example.answer, result.text))
            spans.append({(s.doc_id, i) for s in result.kept for i in range(s.start, s.end)})
        kept[label] = spans
        mean, low, high = bootstrap_ci(recalls)
        jaccard = float(np.mean([len(a & b) / max(1, len(a | b)) for a, b in zip(kept["fp32"], spans)]))
        rows.append({"forward": label, "examples": len(examples), "answer_recall": mean, "ci": (low, high),
                     "seconds": seconds, "jaccard_vs_fp32": jaccard})
        print(rows[-1], flush=True)
    return rows


def budget_rows(n_texts: int, budgets_per_text: int, seed: int = 0) -> list[dict]:
    """compressed <= budget always, and within 3% under it, over random (text, budget) pairs."""
    from ctxzip import Budget
    from ctxzip.compressors.base import ScoringCompressor
    from ctxzip.compressors.token_classifier import TokenClassifierCompressor
    from ctxzip.select import Units
    from eval.datasets import load_hotpotqa, load_squad
    from eval.llmlingua_adapter import distilled_llmlingua2_checkpoint

    inner = TokenClassifierCompressor(model=distilled_llmlingua2_checkpoint(), quantize="int8")

    class CachedScores(ScoringCompressor):
        """Runs Compressor.compress as usual; the model scores each text once for all its budgets."""

        method = "token"
        protection = inner.protection

        def __init__(self):
            self.cache = {}

        def score_units(self, request):
            key = tuple(d.text for d in request.documents)
            if key not in self.cache:
                self.cache[key] = inner.score_units(request)
            u = self.cache[key]
            return Units(u.doc, u.start, u.end, u.score, u.protected.copy())

    rng = np.random.default_rng(seed)
    texts = [e.documents() for e in load_hotpotqa("eval", limit=n_texts // 2)]
    squad = load_squad("eval", answerable=True)
    texts += [[s.context] for s in dict((s.context, s) for s in squad).values()][: n_texts - len(texts)]
    cached = CachedScores()
    rows = []
    for tokenizer in ("cl100k_base", "smollm2"):
        counter = Budget(tokens=1, tokenizer=tokenizer).counter
        over, within, pairs, shortfall = 0, 0, 0, []
        for documents in texts:
            docs = documents if isinstance(documents[0], str) else documents
            original = counter.count("\n\n".join(d if isinstance(d, str) else d.text for d in docs))
            for share in rng.uniform(0.05, 0.95, size=budgets_per_text):
                budget = max(1, int(share * original))
                result = cached.compress(docs, budget=Budget(tokens=budget, tokenizer=tokenizer))
                pairs += 1
                over += result.compressed_tokens > budget
                within += result.compressed_tokens >= 0.97 * budget
                shortfall.append(1 - result.compressed_tokens / budget)
        rows.append({"tokenizer": tokenizer, "pairs": pairs, "over_budget": over, "within_3pct": within / pairs,
                     "median_shortfall": float(np.median(shortfall)), "p95_shortfall": float(np.quantile(shortfall, 0.95))})
        print(rows[-1], flush=True)
    return rows


def render(speed, recall, budget, args) -> str:
    from eval.report import markdown_table

    lines = [
        "# Token classifier: speed against llmlingua, int8 faithfulness, budget compliance",
        "",
        f"Command: `.venv/bin/python -m eval.token_speed{' --quick' if args.quick else ''} --rounds {args.rounds}` (run under `flock /tmp/ctxzip-heavy.lock`).",
        "Checkpoint for every row: the embedded distilled model `ctxzip/lingua-minilm-v1` (all-MiniLM-L6-v2 with a trained",
        "keep/drop head), copied as `...-bert-base-multilingual-cased` so llmlingua accepts it. llmlingua runs its 512-token chunks;",
        "ctxzip the 256-token windows the model was trained on.",
        f" Inputs: HotpotQA eval paragraphs joined to the size shown; rate/ratio {RATIO}.",
        "llmlingua = `PromptCompressor(use_llmlingua2=True).compress_prompt_llmlingua2([text], rate=0.33)` (0.2.2, fp32, its 512-token chunks, batch 50).",
        f"{args.rounds} rounds; in each round every implementation runs once per size in a fresh process (best of {args.repeats} calls at 2k, one call at 8k and 32k, after a warm-up call). "
        "The speed-up is taken within a round (same load for both), then its median and range over rounds are shown; "
        "forward = wall time inside `model.forward` (median round); peak RSS = the process's max resident memory, model included.",
        "CPU shared with other jobs (2 cores); no GPU was available, so the CUDA post-processing share is not measured here.",
        "",
        "## Speed",
        "",
    ]
    table, ratio_rows = [], []
    by_size: dict = {}
    for row in speed:
        by_size.setdefault(row["target"], {}).setdefault(row["variant"], []).append(row)
    for target, variants in by_size.items():
        base = {r["round"]: r["seconds"] for r in variants["llmlingua"]}
        for variant, rows in variants.items():
            seconds = np.array([r["seconds"] for r in rows])
            ratios = np.array([base[r["round"]] / r["seconds"] for r in rows if r["round"] in base])
            typical = rows[int(np.argsort(seconds)[len(seconds) // 2])]
            table.append([
                f"~{target // 1000}k", typical["tokens"], variant, len(rows), f"{np.median(seconds):.2f}",
                f"{seconds.min():.2f}-{seconds.max():.2f}", f"{typical['tokens'] / np.median(seconds):.0f}",
                f"{np.median(ratios):.2f}x", f"{ratios.min():.2f}-{ratios.max():.2f}x",
                f"{100 * typical['forward_seconds'] / typical['seconds']:.1f}%", f"{typical['peak_rss_mb']:.0f}",
                f"{typical['output_tokens']} / {typical['budget']}",
            ])
    lines.append(markdown_table(
        ["input", "cl100k tokens", "implementation", "rounds", "median s", "range s", "tokens/s (median)",
         "speed-up vs llmlingua (median of rounds)", "speed-up range", "in forward", "peak RSS MB",
         "output tokens / target"], table))
    if recall:
        lines += ["", f"## Answer recall, fp32 vs int8 forward (HotpotQA eval, first {recall[0]['examples']} non-yes/no questions, ratio {RATIO}, distilled model, task-agnostic)", ""]
        base = recall[0]["answer_recall"]
        lines.append(markdown_table(
            ["forward", "examples", "answer recall", "95% CI", "points vs fp32", "kept-character Jaccard vs fp32", "seconds total"],
            [[r["forward"], r["examples"], r["answer_recall"], f"{r['ci'][0]:.3f}-{r['ci'][1]:.3f}",
              f"{100 * (r['answer_recall'] - base):+.1f}", f"{r['jaccard_vs_fp32']:.3f}", f"{r['seconds']:.1f}"] for r in recall]))
    if budget:
        lines += ["", "## Budget compliance (ctxzip `token`, int8)", "",
                  "Random (text, budget) pairs: texts are HotpotQA eval contexts (10 paragraphs) and SQuAD eval paragraphs; budget uniform in",
                  "5-95% of the text's tokens in that tokenizer. Scores are computed once per text; every pair goes through `Compressor.compress`.", ""]
        lines.append(markdown_table(["tokenizer", "pairs", "over budget", "within 3% under", "median shortfall", "95th pct shortfall"],
                                    [[r["tokenizer"], r["pairs"], r["over_budget"], f"{100 * r['within_3pct']:.1f}%",
                                      f"{100 * r['median_shortfall']:.2f}%", f"{100 * r['p95_shortfall']:.2f}%"] for r in budget]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=2, metavar=("VARIANT", "TOKENS"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="times every (size, implementation) is run")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="speed,recall,budget")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.one:
        print(json.dumps(run_one(args.one[0], int(args.one[1]), args.repeats)))
        return
    parts = set(args.parts.split(","))
    from eval.report import write_results

    # Written after each part, so a run cut short still leaves what it measured.
    speed = speed_rows(SIZES[:2] if args.quick else SIZES, args.repeats, args.rounds) if "speed" in parts else []
    write_results("token_speed", render(speed, [], [], args))
    recall = recall_rows(20 if args.quick else 30) if "recall" in parts else []
    write_results("token_speed", render(speed, recall, [], args))
    budget = budget_rows(20 if args.quick else 100, 10) if "budget" in parts else []  # 2 x 1,000 pairs
    print(write_results("token_speed", render(speed, recall, budget, args)))


if __name__ == "__main__":
    main()
