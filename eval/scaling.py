"""How every method scales: tokens per second at 2k, 20k and 200k input tokens, and peak memory.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.scaling

Writes eval/results/scaling.md. Each (method, size) runs in a fresh process, so its peak resident
memory (ru_maxrss) is its own and model loading is timed apart from compressing: the rate is input
tokens / compress seconds, with the model already loaded by a small warm-up call. Prose methods get
HotpotQA eval paragraphs in retrieval-like documents of ~150 tokens with a question; `code` gets
Python standard-library modules with a function signature as the query. Budget: 1/3 of the input.
The target (issue "Hardening"): at 200k tokens, at least a third of the method's rate at 2k.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

from eval.report import markdown_table, write_results

SIZES = (2_000, 20_000, 200_000)
METHODS = ("truncate", "random", "extractive", "token", "perplexity", "code", "cascade")


@dataclass
class Run:
    method: str
    tokens: int
    load_seconds: float
    compress_seconds: float
    peak_mb: float
    compressed_tokens: int
    budget_tokens: int

    @property
    def rate(self) -> float:
        return self.tokens / self.compress_seconds if self.compress_seconds > 0 else float("inf")


def corpus(method: str, tokens: int):
    """(documents, query) of about `tokens` cl100k tokens for `method`."""
    from ctxzip import Document, get_token_counter

    counter = get_token_counter("cl100k_base")
    documents, total = [], 0
    if method == "code":
        from eval.datasets import load_stdlib_modules

        for module in load_stdlib_modules("eval", min_lines=200):
            documents.append(Document(module.text, module.path))
            total += counter.count(module.text)
            if total >= tokens:
                break
        query = "def parse_header(line: str) -> dict:\n    \"\"\"Split a header line into its key and value.\"\"\""
    else:
        from eval.datasets import load_hotpotqa

        query = None
        for example in load_hotpotqa("eval"):
            query = query or example.question
            for paragraph in example.paragraphs:
                documents.append(Document(paragraph.text, str(len(documents)), {"title": paragraph.title}))
                total += counter.count(paragraph.text)
            if total >= tokens:
                break
    # Trim the last document so the input is close to `tokens`.
    excess = total - tokens
    if excess > 0:
        last = documents[-1]
        ids = counter.encode(last.text)
        documents[-1] = Document(counter.encoding.decode(ids[: max(1, len(ids) - excess)]), last.id, last.metadata)
    return documents, query


def measure_one(method: str, tokens: int) -> dict:
    """Runs in the child process: load (with a warm-up), compress once, report."""
    import resource
    import time

    from ctxzip import Budget, create_compressor

    documents, query = corpus(method, tokens)
    started = time.perf_counter()
    compressor = create_compressor(method)
    compressor.compress(corpus(method, 400)[0], query, Budget(ratio=1 / 3))  # loads the models
    loaded = time.perf_counter()
    result = compressor.compress(documents, query, Budget(ratio=1 / 3))
    done = time.perf_counter()
    return {
        "method": method, "tokens": result.original_tokens, "load_seconds": loaded - started,
        "compress_seconds": done - loaded, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "compressed_tokens": result.compressed_tokens, "budget_tokens": result.budget_tokens,
    }


def run_in_child(method: str, tokens: int, timeout: float) -> Run | str:
    command = [sys.executable, "-m", "eval.scaling", "--child", method, str(tokens)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout:.0f} s"
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]
    return Run(**json.loads(done.stdout.strip().splitlines()[-1]))


def render(runs: dict[tuple[str, int], Run | str], sizes, timeout: float) -> str:
    rows = []
    for method in dict.fromkeys(m for m, _ in runs):
        base = runs.get((method, sizes[0]))
        for size in sizes:
            run = runs.get((method, size))
            if not isinstance(run, Run):
                rows.append([method, size, run or "-", "-", "-", "-", "-"])
                continue
            share = run.rate / base.rate if isinstance(base, Run) else float("nan")
            rows.append([method, run.tokens, f"{run.rate:,.0f}", f"{share:.2f}", f"{run.compress_seconds:.2f}",
                         f"{run.peak_mb:,.0f}", "yes" if run.compressed_tokens <= run.budget_tokens else "NO"])
    held = [m for m in dict.fromkeys(m for m, _ in runs)
            if all(isinstance(runs.get((m, s)), Run) for s in sizes)
            and runs[(m, sizes[-1])].rate >= runs[(m, sizes[0])].rate / 3]
    return "\n".join([
        "# Scaling: tokens per second and peak memory by input size", "",
        __doc__.split("\n\n", 2)[2].strip(), "",
        f"Each run has at most {timeout:.0f} s. Rate = input tokens / compress seconds (model loaded); "
        "'of 2k rate' = rate / the same method's rate at the smallest size; peak = the process's maximum resident memory.", "",
        markdown_table(["method", "input tokens", "tokens/s", "of 2k rate", "compress s", "peak MB", "within budget"], rows), "",
        f"At the largest size, at least a third of the 2k rate: {', '.join(held) or 'none'}.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per (method, size) run")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure_one(args.child[0], int(args.child[1]))))
        return 0
    sizes = tuple(int(s) for s in args.sizes.split(","))
    runs: dict[tuple[str, int], Run | str] = {}
    for method in args.methods.split(","):
        for size in sizes:
            runs[(method, size)] = outcome = run_in_child(method, size, args.timeout)
            print(method, size, outcome if isinstance(outcome, str) else f"{outcome.rate:,.0f} tokens/s, "
                  f"{outcome.peak_mb:,.0f} MB", flush=True)
            write_results("scaling", render(runs, sizes, args.timeout))
            if isinstance(outcome, str):
                break  # a larger input will not do better
    print(write_results("scaling", render(runs, sizes, args.timeout)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
