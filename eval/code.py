"""Benchmark of the code compressor on functions cut from the Python standard library.

    python -m eval.code [--split eval] [--tasks 24] [--ratios 0.25] [--methods code,nearest,random,perplexity,token]

Task construction (fixed; see `build_tasks`): modules of the running interpreter's stdlib from
`eval.datasets.load_stdlib_modules(split)`, in path order. In each module whose size in SmolLM2 tokens
allows it, the functions (top-level or methods) with a docstring and a body of 6-60 lines after it
are candidates; one is picked by a hash of the module path. The instruction is the function's
decorators, signature and docstring; the target is the rest of its body; the context is the module
with the whole function removed (2,000-4,500 SmolLM2 tokens, so context + instruction + target fit
SmolLM2's 8k window). The prompt is `compressed context + "\\n\\n" + instruction`, and the metric is
the mean negative log-likelihood of the target tokens under SmolLM2 (fp32, CPU), against the full
and the empty context. Identifier recall: of the names the target uses that the full context defines
(def/class names, assignment targets including `self.x`, imports), the share the kept context defines.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field

import numpy as np

from ctxzip import Budget, Document
from ctxzip.compressors.base import Compressor, ScoringCompressor
from ctxzip.errors import CtxzipError
from ctxzip.select import Units
from eval.datasets import load_stdlib_modules
from eval.metrics import bootstrap_ci
from eval.report import markdown_table, plot_quality_vs_ratio, write_results

TOKENIZER = "smollm2"
CONTEXT_TOKENS = (2000, 4500)
BODY_LINES = (6, 60)
TARGET_TOKENS = (48, 400)


@dataclass
class CodeTask:
    path: str
    function: str
    context: str
    cut: int  # character offset in `context` where the function stood
    instruction: str
    target: str
    context_tokens: int = 0
    target_tokens: int = 0

    def document(self) -> Document:
        return Document(self.context, id=self.path, metadata={"path": self.path, "cut": self.cut})


def _candidates(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node
        elif isinstance(node, ast.ClassDef):
            yield from (n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def build_tasks(split: str, limit: int) -> list[CodeTask]:
    """One task per module that fits, in module path order, until `limit` tasks."""
    from ctxzip import get_token_counter

    counter = get_token_counter(TOKENIZER)
    tasks = []
    for module in load_stdlib_modules(split, min_lines=150):
        total = counter.count(module.text)
        if not (CONTEXT_TOKENS[0] + TARGET_TOKENS[0] <= total <= CONTEXT_TOKENS[1] + 2 * TARGET_TOKENS[1]):
            continue
        try:
            tree = ast.parse(module.text)
        except SyntaxError:
            continue
        lines = module.text.splitlines(keepends=True)
        options = []
        for fn in _candidates(tree):
            doc = fn.body[0] if fn.body else None
            if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
                continue
            body_lines = fn.end_lineno - doc.end_lineno
            if not (BODY_LINES[0] <= body_lines <= BODY_LINES[1]) or len(fn.body) < 2:
                continue
            first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
            options.append((fn.name, first, doc.end_lineno, fn.end_lineno))
        if not options:
            continue
        pick = int(hashlib.sha1(module.path.encode()).hexdigest(), 16) % len(options)
        name, first, doc_end, last = options[pick]
        before, after = "".join(lines[: first - 1]), "".join(lines[last:])
        task = CodeTask(module.path, name, before + after, len(before),
                        "".join(lines[first - 1: doc_end]), "".join(lines[doc_end:last]).rstrip() + "\n")
        task.context_tokens = counter.count(task.context)
        task.target_tokens = counter.count(task.target)
        if CONTEXT_TOKENS[0] <= task.context_tokens <= CONTEXT_TOKENS[1] and TARGET_TOKENS[0] <= task.target_tokens <= TARGET_TOKENS[1]:
            tasks.append(task)
        if len(tasks) >= limit:
            break
    return tasks


# -- baselines -------------------------------------------------------------------------------


@dataclass
class NearestCodeCompressor(ScoringCompressor):
    """Truncation that keeps the lines nearest to where the function was cut out (metadata "cut")."""

    method = "nearest"

    def score_units(self, request) -> Units:
        documents = request.documents
        docs, starts, ends, scores = [], [], [], []
        for index, doc in enumerate(documents):
            offsets = np.array([m.end() for m in re.finditer(r"\n", doc.text)] + [len(doc.text)])
            offsets = np.unique(offsets[offsets > 0])
            begin = np.concatenate([[0], offsets[:-1]])
            cut = doc.metadata.get("cut", len(doc.text))
            distance = np.where(begin >= cut, begin - cut, cut - offsets)
            docs.append(np.full(len(begin), index)), starts.append(begin), ends.append(offsets)
            scores.append(-distance.astype(np.float64))
        return Units.build(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), np.concatenate(scores))


@dataclass
class RandomFunctionsCompressor(ScoringCompressor):
    """Whole syntax chunks (functions, classes' own lines, statement groups) in random order."""

    seed: int = 0
    method = "random-functions"

    def score_units(self, request) -> Units:
        documents = request.documents
        from ctxzip.code_analysis.chunking import chunk_documents

        units = chunk_documents(documents)
        rng = np.random.default_rng(self.seed)
        per_chunk = rng.random(max(units.n_chunks, 1))
        score = np.where(units.chunk >= 0, per_chunk[np.maximum(units.chunk, 0)], rng.random(len(units)))
        return Units.build(units.doc, units.start, units.end, score)


def make_methods(names: list[str]) -> dict[str, Compressor]:
    from ctxzip import create_compressor
    from ctxzip.compressors.code import CodeCompressor

    makers = {
        "code": lambda: CodeCompressor(scorer="perplexity"),
        "code-similarity": lambda: CodeCompressor(scorer="similarity"),
        "code-lexical": lambda: CodeCompressor(scorer="lexical"),
        "nearest": NearestCodeCompressor,
        "random": RandomFunctionsCompressor,
        "perplexity": lambda: create_compressor("perplexity"),
        "token": lambda: create_compressor("token"),  # the embedded distilled model (question-aware with the query)
    }
    methods = {}
    for name in names:
        try:
            methods[name] = makers[name]()
        except (CtxzipError, ImportError, TypeError) as exc:
            print(f"skipping {name}: {exc}")
    return methods


# -- metrics ---------------------------------------------------------------------------------

_DEF = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)")
_ASSIGN = re.compile(r"^[ \t]*((?:(?:self|cls)\.)?[A-Za-z_]\w*(?:[ \t]*,[ \t]*(?:(?:self|cls)\.)?[A-Za-z_]\w*)*)[ \t]*(?::[^=\n]*)?=(?!=)", re.M)
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+\S+[ \t]+)?import[ \t]+\(?([^)\n]+)", re.M)
_NAME = re.compile(r"[A-Za-z_]\w*")


def defined_names(text: str) -> set[str]:
    """Names a piece of Python text defines (found by patterns, so broken or elided code works too)."""
    names = set(_DEF.findall(text))
    for group in _ASSIGN.findall(text):
        names.update(part.strip().split(".")[-1] for part in group.split(","))
    for group in _IMPORT.findall(text):
        for item in group.split(","):
            words = item.split()
            if words:
                names.add(words[-1].split(".")[0] if len(words) == 1 else words[-1])
    return names


def identifier_recall(task: CodeTask, kept: str, full_defined: set[str]) -> float:
    used = set(_NAME.findall(task.target)) - set(_NAME.findall(task.instruction))
    wanted = used & full_defined
    if not wanted:
        return float("nan")
    return len(wanted & defined_names(kept)) / len(wanted)


class TargetScorer:
    """Mean NLL of the target tokens after a prompt, under SmolLM2 (one forward per prompt)."""

    def __init__(self) -> None:
        from ctxzip.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm("smollm2")
        self.seconds = 0.0

    def nll(self, prompt: str, target: str) -> float:
        import torch

        tok = self.tokenizer
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        target_ids = tok(target, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([[start] + prompt_ids + target_ids])
        began = time.perf_counter()
        with torch.inference_mode():
            hidden = self.model.model(input_ids=ids, use_cache=False).last_hidden_state[0, -len(target_ids) - 1:-1]
            logits = self.model.get_output_embeddings()(hidden).float()
            loss = torch.nn.functional.cross_entropy(logits, torch.tensor(target_ids)).item()
        self.seconds += time.perf_counter() - began
        return loss


def prompt_for(context: str, task: CodeTask) -> str:
    return (context.rstrip() + "\n\n\n" if context.strip() else "") + task.instruction


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Row:
    task: str
    method: str
    ratio: float
    achieved: float
    nll: float
    recall: float
    seconds: float
    forward_seconds: float | None = None
    extra: dict = field(default_factory=dict)


def run(split: str, n_tasks: int, ratios: list[float], names: list[str], log_path=None) -> tuple[list[CodeTask], list[Row]]:
    """Every method on every task; rows are appended to `log_path` as they come, and rows already
    there (same task, method, ratio) are reused, so an interrupted run resumes."""
    tasks = build_tasks(split, n_tasks)
    methods = make_methods(names)
    done: dict[tuple, Row] = {}
    if log_path is not None and log_path.exists():
        for line in log_path.read_text().splitlines():
            row = Row(**json.loads(line))
            done[(row.task, row.method, row.ratio)] = row
    scorer = None
    rows: list[Row] = []

    def record(row: Row) -> None:
        rows.append(row)
        if log_path is not None and (row.task, row.method, row.ratio) not in done:
            with open(log_path, "a") as f:
                f.write(json.dumps(row.__dict__) + "\n")

    for number, task in enumerate(tasks):
        full_defined = defined_names(task.context)
        jobs = [("full", 1.0), ("empty", 0.0)] + [(name, ratio) for ratio in ratios for name in methods]
        for name, ratio in jobs:
            if (task.path, name, ratio) in done:
                rows.append(done[(task.path, name, ratio)])
                continue
            scorer = scorer or TargetScorer()
            if name in ("full", "empty"):
                context = task.context if name == "full" else ""
                record(Row(task.path, name, ratio, ratio, scorer.nll(prompt_for(context, task), task.target),
                           identifier_recall(task, context, full_defined) if context else 0.0, 0.0))
                continue
            began = time.perf_counter()
            try:
                result = methods[name].compress([task.document()], query=task.instruction,
                                                budget=Budget(ratio=ratio, tokenizer=TOKENIZER))
            except Exception as exc:  # a baseline that fails is reported, not fatal
                print(f"{name} failed on {task.path}: {type(exc).__name__}: {exc}", flush=True)
                continue
            seconds = time.perf_counter() - began
            assert result.compressed_tokens <= result.budget_tokens
            record(Row(task.path, name, ratio, result.ratio, scorer.nll(prompt_for(result.text, task), task.target),
                       identifier_recall(task, result.text, full_defined), seconds,
                       result.timings.get("forward"), {"parses": _parses(result.text)}))
        print(f"[{number + 1}/{len(tasks)}] {task.path}:{task.function} ctx={task.context_tokens} "
              + " ".join(f"{r.method}@{r.ratio:g}={r.nll:.3f}" for r in rows if r.task == task.path), flush=True)
    return tasks, rows


def _complete_rows(tasks: list[CodeTask], log, ratios, names) -> tuple[list[CodeTask], list[Row]]:
    """Rows of the tasks for which the log has full, empty and every method that ran at all."""
    rows = [Row(**json.loads(line)) for line in log.read_text().splitlines()]
    present = {r.method for r in rows}
    wanted = {("full", 1.0), ("empty", 0.0)} | {(m, q) for m in names if m in present for q in ratios}
    have: dict[str, set] = {}
    for r in rows:
        have.setdefault(r.task, set()).add((r.method, r.ratio))
    complete = [t for t in tasks if wanted <= have.get(t.path, set())]
    paths = {t.path for t in complete}
    return complete, [r for r in rows if r.task in paths]


def _parses(text: str) -> bool:
    from ctxzip.code_analysis.render import parses

    return parses(text, "python")


def summarise(tasks: list[CodeTask], rows: list[Row], ratios: list[float], split: str, command: str, name: str = "code") -> str:
    by = {}
    for r in rows:
        by.setdefault((r.method, r.ratio), {})[r.task] = r
    full = {r.task: r.nll for r in rows if r.method == "full"}
    empty = {r.task: r.nll for r in rows if r.method == "empty"}
    table = []
    plot: dict[str, list[tuple[float, float]]] = {}
    methods = [m for m in dict.fromkeys(r.method for r in rows) if m not in ("full", "empty")]
    for label, ratio in [("full", 1.0), ("empty", 0.0)] + [(m, q) for q in ratios for m in methods]:
        cell = by.get((label, ratio), {})
        if not cell:
            continue
        values = [cell[t].nll for t in full if t in cell]
        relative = [cell[t].nll / full[t] for t in full if t in cell]
        mean, low, high = bootstrap_ci(values)
        rel, rel_low, rel_high = bootstrap_ci(relative)
        recall = np.nanmean([cell[t].recall for t in cell]) if cell else float("nan")
        achieved = float(np.mean([cell[t].achieved for t in cell]))
        seconds = float(np.mean([cell[t].seconds for t in cell]))
        forwards = [cell[t].forward_seconds for t in cell if cell[t].forward_seconds is not None]
        share = f"{np.sum(forwards) / max(np.sum([cell[t].seconds for t in cell]), 1e-9):.0%}" if forwards else "n/a"
        parsed = [cell[t].extra.get("parses") for t in cell if "parses" in cell[t].extra]
        table.append([label, f"{ratio:g}", f"{achieved:.3f}", f"{mean:.3f} [{low:.3f}, {high:.3f}]",
                      f"{rel:.3f} [{rel_low:.3f}, {rel_high:.3f}]", f"{recall:.3f}", f"{seconds:.2f}", share,
                      f"{np.mean(parsed):.0%}" if parsed else "-"])
        if label not in ("full", "empty"):
            plot.setdefault(label, []).append((achieved, mean))
    for label, value in (("full", full), ("empty", empty)):
        plot[label] = [(1.0 if label == "full" else 0.0, float(np.mean(list(value.values()))))] * 2
    plot_quality_vs_ratio(name, {k: v for k, v in plot.items() if k not in ("full", "empty")}, "target NLL (nats/token, lower is better)",
                          "Code context compression on stdlib functions (SmolLM2-135M)")

    lines = ["# Code compression on Python standard library functions", "",
             f"Command: `{command}`", "",
             f"{len(tasks)} tasks from the **{split}** split of `load_stdlib_modules` (Python {os.sys.version.split()[0]} stdlib). "
             "Budgets are ratios of the context counted in SmolLM2's tokenizer (ratio 0.25 = 4x compression).", "",
             "## Task construction (fixed)", "",
             __doc__.split("Task construction (fixed; see `build_tasks`): ")[1].split("\n\"\"\"")[0].strip(), "",
             "## Results", "",
             "NLL = mean per-token NLL of the target body (nats, lower is better), with a 95% bootstrap interval; "
             "`NLL / full` = per-task ratio to the full-context NLL, averaged; recall = identifier recall; "
             "time = seconds per task to compress (model loads excluded after the first task); forward share = "
             "share of that time in model forward passes (measured by the code compressor only); parses = share of "
             "outputs that tree-sitter parses as Python.", "",
             markdown_table(["method", "ratio", "achieved", "NLL [95% CI]", "NLL / full [95% CI]", "recall",
                             "time s", "forward share", "parses"], table), ""]
    lines += _comparisons(by, full, ratios, methods)
    lines += ["", f"![quality vs ratio]({name}.png)", "", "## Tasks", "",
              markdown_table(["module", "function", "context tokens", "target tokens"],
                             [[t.path, t.function, t.context_tokens, t.target_tokens] for t in tasks])]
    return "\n".join(lines)


def _comparisons(by, full, ratios, methods) -> list[str]:
    lines = ["## Paired comparisons", "",
             "Per task, the code compressor's NLL minus the other's (negative = code better), mean with a 95% bootstrap interval, and wins.", ""]
    rows = []
    for ratio in ratios:
        mine = by.get(("code", ratio), {})
        if not mine:
            continue
        for other in ["full"] + [m for m in methods if m != "code"]:
            theirs = by.get((other, 1.0 if other == "full" else ratio), {})
            common = [t for t in mine if t in theirs]
            if not common:
                continue
            diff = [mine[t].nll - theirs[t].nll for t in common]
            mean, low, high = bootstrap_ci(diff)
            rows.append([f"{ratio:g}", other, f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]",
                         f"{sum(d < 0 for d in diff)}/{len(diff)}"])
    return lines + [markdown_table(["ratio", "vs", "code - other", "code wins"], rows)] if rows else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="eval")
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--ratios", default="0.25")
    parser.add_argument("--methods", default="code,code-similarity,nearest,random,perplexity,token")
    parser.add_argument("--name", default="code", help="results file name (eval/results/<name>.md)")
    parser.add_argument("--summarise-only", action="store_true",
                        help="write the report from the rows already in eval/results/<name>.jsonl (complete tasks only)")
    args = parser.parse_args()
    ratios = [float(r) for r in args.ratios.split(",")]
    command = "python -m eval.code " + " ".join(
        f"--{k} {v}" for k, v in (("split", args.split), ("tasks", args.tasks), ("ratios", args.ratios), ("methods", args.methods)))
    from eval.report import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{args.name}.jsonl"
    if args.summarise_only:
        tasks, rows = _complete_rows(build_tasks(args.split, args.tasks), log, ratios, args.methods.split(","))
    else:
        tasks, rows = run(args.split, args.tasks, ratios, args.methods.split(","), log)
    markdown = summarise(tasks, rows, ratios, args.split, command, args.name)
    print(f"wrote {write_results(args.name, markdown)}")


if __name__ == "__main__":
    main()
