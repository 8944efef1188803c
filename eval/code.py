"""Benchmark of code compression: functions cut out of Python modules, every method in one run.

    python -m eval.code [--groups stdlib,third-party] [--methods ...] [--ratio 0.25] [--name code]

Tasks are the fixed lists of `eval.code_tasks` (module docstring there): the context is a module
without one function, the query is the function's signature and docstring, and the budget is a
quarter of the context in cl100k tokens (4x). Metrics per method:

- identifier recall: of the names the hidden body uses (minus those in the query) that the full
  context defines (def/class names, assignment targets including `self.x`, imported names), the
  share the kept context still defines;
- target NLL (stdlib group only: the full context must fit SmolLM2's window): mean negative
  log-likelihood of the hidden body's tokens under SmolLM2-135M (fp32, CPU) after
  `context + "\\n\\n\\n" + query`, and its ratio to the full context's;
- parses: the output parses as Python (tree-sitter, no error node);
- seconds per task to compress (each method first runs once on a small file, so model loads are
  not counted), the same per 20k context tokens, and the share of that time in model forwards.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ctxzip import Budget
from eval.code_methods import make_methods
from eval.code_tasks import GROUPS, THIRD_PARTY_TASKS, CodeTask, build_group
from eval.metrics import bootstrap_ci
from eval.report import RESULTS, markdown_table, write_results

NLL_GROUPS = ("stdlib",)
# On repository tasks (30k-50k tokens) the methods that run a causal LM over every chunk are left out.
REPO_METHODS = frozenset({"nearest-end", "window", "random-functions", "code", "code-nohint", "code-lexical", "code-rerank", "code-minilm"})
DEFAULT_METHODS = ("nearest-end,window,random-functions,previous-default,longcodezip-coarse,code,code-nohint,"
                   "code-rerank,code-minilm")
METHOD_NOTES = {
    "nearest-end": "the lines nearest the end of each file",
    "window": "the lines nearest the gap (a window centred on where the function was)",
    "random-functions": "whole syntax chunks in random order",
    "previous-default": "`CodeCompressor(scorer=\"perplexity\")`, the default before issue 17: functions ranked by "
                        "SmolLM2 perplexity drop, knapsack over statements, skeleton",
    "longcodezip-coarse": "LongCodeZip's coarse stage as the perplexity scorer computes it: whole chunks by "
                          "SmolLM2 perplexity drop of the query",
    "code": "`CodeCompressor()`: definition graph + gap + definition-use model, no model forwards",
    "code-nohint": "`CodeCompressor()` without the gap's offset (inferred from the query's names)",
    "code-rerank": "`CodeCompressor(rerank=\"perplexity\", rerank_top=12)`: SmolLM2 re-scores the 12 most relevant "
                   "functions in one batched pass",
    "code-minilm": "`CodeCompressor(rerank=\"similarity\")` on every function: MiniLM similarity to the query",
    "code-similarity": "`CodeCompressor(scorer=\"similarity\")`: the earlier plan with MiniLM",
    "code-lexical": "`CodeCompressor(scorer=\"lexical\")`: the earlier plan with BM25 over identifiers",
}
TARGETS = {"recall": 0.65, "nll_ratio": 1.05, "parses": 1.0, "seconds_per_20k": 5.0}

# -- identifier recall ------------------------------------------------------------------------

_DEF = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)")
_ASSIGN = re.compile(r"^[ \t]*((?:(?:self|cls)\.)?[A-Za-z_]\w*(?:[ \t]*,[ \t]*(?:(?:self|cls)\.)?[A-Za-z_]\w*)*)[ \t]*(?::[^=\n]*)?=(?!=)", re.M)
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+\S+[ \t]+)?import[ \t]+([^(\n][^\n]*)", re.M)
_IMPORT_PARENTHESISED = re.compile(r"^[ \t]*from[ \t]+\S+[ \t]+import[ \t]*\(([^)]*)\)", re.M)
_NAME = re.compile(r"[A-Za-z_]\w*")
_KEYWORDS = frozenset(keyword.kwlist)


def defined_names(text: str) -> set[str]:
    """Names a piece of Python text defines (found by patterns, so broken or elided code works too;
    "class for ..." in a docstring would define `for`, so keywords are left out)."""
    names = set(_DEF.findall(text))
    for group in _ASSIGN.findall(text):
        names.update(part.strip().split(".")[-1] for part in group.split(","))
    for group in _IMPORT.findall(text) + _IMPORT_PARENTHESISED.findall(text):
        for item in group.split(","):
            words = item.split("#")[0].split()
            if words:
                names.add(words[-1].split(".")[0] if len(words) == 1 else words[-1])
    return names - _KEYWORDS


def identifier_recall(task: CodeTask, kept: str, full_defined: set[str]) -> float:
    used = set(_NAME.findall(task.target)) - set(_NAME.findall(task.instruction))
    wanted = used & full_defined
    if not wanted:
        return float("nan")
    return len(wanted & defined_names(kept)) / len(wanted)


# -- target NLL -------------------------------------------------------------------------------


class TargetScorer:
    """Mean NLL of the target tokens after a prompt, under SmolLM2 (one forward per prompt)."""

    def __init__(self) -> None:
        from ctxzip.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm("smollm2", "cpu")
        self.model.float()

    def nll(self, prompt: str, target: str) -> float:
        import torch

        tok = self.tokenizer
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        target_ids = tok(target, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([[start] + prompt_ids + target_ids])
        with torch.inference_mode():
            hidden = self.model.model(input_ids=ids, use_cache=False).last_hidden_state[0, -len(target_ids) - 1:-1]
            logits = self.model.get_output_embeddings()(hidden).float()
            return torch.nn.functional.cross_entropy(logits, torch.tensor(target_ids)).item()


def prompt_for(context: str, task: CodeTask) -> str:
    return (context.rstrip() + "\n\n\n" if context.strip() else "") + task.instruction


def parses(text: str) -> bool:
    from ctxzip.code_analysis.render import parses as tree_sitter_parses

    return tree_sitter_parses(text, "python")


# -- the run ----------------------------------------------------------------------------------


@dataclass
class Row:
    group: str
    task: str
    method: str
    achieved: float
    recall: float
    nll: float | None
    parses: bool | None
    seconds: float
    forward_seconds: float | None
    context_tokens: int
    extra: dict = field(default_factory=dict)


_WARM_UP = '''import os

LIMIT = 3


class Store:
    """A small store."""

    def __init__(self, path):
        self.path = path
        self.items = {}

    def load(self, name):
        """Load an item."""
        full = os.path.join(self.path, name)
        with open(full) as handle:
            self.items[name] = handle.read()
        return self.items[name]


def helper(value):
    """Double a value."""
    return value * 2
'''


def warm_up(methods: dict) -> None:
    """One call per method on a small file, so model loads are not timed."""
    from ctxzip import Document

    for method in methods.values():
        method.compress([Document(_WARM_UP, id="warm.py", metadata={"path": "warm.py", "cut": 150})],
                        query='def save(self, name):\n    """Save an item."""', budget=Budget(ratio=0.5))


def run(groups: list[str], names: list[str], ratio: float, log_path, nll_groups=NLL_GROUPS) -> tuple[list[CodeTask], list[Row]]:
    """Every method on every task. Rows go to `log_path` as they come; rows already there (same
    task and method) are reused, so an interrupted run resumes."""
    tasks = [task for group in groups for task in build_group(group)]
    done: dict[tuple, Row] = {}
    if log_path is not None and log_path.exists():
        for line in log_path.read_text().splitlines():
            row = Row(**json.loads(line))
            done[(row.task, row.method)] = row
    methods = make_methods(names)
    pending = {name for name in methods for t in tasks if (t.key, name) not in done}
    if pending:
        warm_up({name: methods[name] for name in pending})
    scorer = None
    rows: list[Row] = []

    def record(row: Row) -> None:
        rows.append(row)
        if log_path is not None:
            with open(log_path, "a") as f:
                f.write(json.dumps(asdict(row)) + "\n")

    for number, task in enumerate(tasks):
        full_defined = defined_names(task.full_context)
        with_nll = task.group in nll_groups
        for name in ["full", "empty"] + [m for m in methods if task.group != "repo" or m in REPO_METHODS or m.startswith("code:")]:
            if (task.key, name) in done:
                rows.append(done[(task.key, name)])
                continue
            if name in ("full", "empty"):
                if not with_nll:
                    continue
                scorer = scorer or TargetScorer()
                context = task.context if name == "full" else ""
                record(Row(task.group, task.key, name, 1.0 if context else 0.0,
                           identifier_recall(task, context, full_defined), scorer.nll(prompt_for(context, task), task.target),
                           None, 0.0, None, task.context_tokens))
                continue
            began = time.perf_counter()
            try:
                result = methods[name].compress(task.documents(), query=task.instruction, budget=Budget(ratio=ratio))
            except Exception as exc:  # a method that fails is reported, not fatal
                print(f"{name} failed on {task.key}: {type(exc).__name__}: {exc}", flush=True)
                record(Row(task.group, task.key, name, float("nan"), float("nan"), None, None, float("nan"), None,
                           task.context_tokens, {"error": f"{type(exc).__name__}: {exc}"}))
                continue
            seconds = time.perf_counter() - began
            if result.compressed_tokens > result.budget_tokens:
                raise AssertionError(f"{name} went over budget on {task.key}")
            nll = None
            if with_nll:
                scorer = scorer or TargetScorer()
                nll = scorer.nll(prompt_for(result.text, task), task.target)
            record(Row(task.group, task.key, name, result.ratio, identifier_recall(task, result.text, full_defined),
                       nll, parses(result.text), seconds, result.timings.get("forward"), task.context_tokens))
        print(f"[{number + 1}/{len(tasks)}] {task.key} ctx={task.context_tokens} "
              + " ".join(f"{r.method}={r.recall:.2f}" for r in rows if r.task == task.key and r.method != "empty"),
              flush=True)
    return tasks, rows


# -- the report -------------------------------------------------------------------------------


def method_summary(rows: list[Row], full: dict[str, float]) -> dict:
    ok = [r for r in rows if not r.extra.get("error")]
    recall = [r.recall for r in ok if not np.isnan(r.recall)]
    nll = [r.nll for r in ok if r.nll is not None]
    ratios = [r.nll / full[r.task] for r in ok if r.nll is not None and r.task in full]
    seconds = [r.seconds for r in ok]
    forwards = [r.forward_seconds or 0.0 for r in ok]
    per_20k = [r.seconds * 20000 / max(r.context_tokens, 1) for r in ok]
    parsed = [r.parses for r in ok if r.parses is not None]
    return {
        "tasks": len(rows), "failed": len(rows) - len(ok),
        "achieved": float(np.mean([r.achieved for r in ok])) if ok else float("nan"),
        "recall": float(np.mean(recall)) if recall else float("nan"),
        "recall_ci": bootstrap_ci(recall)[1:] if len(recall) > 1 else (float("nan"),) * 2,
        "recall_worst": float(np.min(recall)) if recall else float("nan"),
        "nll": float(np.mean(nll)) if nll else None,
        "nll_ratio": float(np.mean(ratios)) if ratios else None,
        "nll_ratio_ci": bootstrap_ci(ratios)[1:] if len(ratios) > 1 else None,
        "parses": float(np.mean(parsed)) if parsed else None,
        "seconds": float(np.mean(seconds)) if seconds else float("nan"),
        "seconds_per_20k": float(np.mean(per_20k)) if per_20k else float("nan"),
        "seconds_max": float(np.max(seconds)) if seconds else float("nan"),
        "forward_share": float(np.sum(forwards) / max(np.sum(seconds), 1e-9)) if any(r.forward_seconds is not None for r in ok) else None,
    }


def _fmt(value, pattern="{:.3f}", missing="-"):
    return missing if value is None or (isinstance(value, float) and np.isnan(value)) else pattern.format(value)


def summarise(tasks: list[CodeTask], rows: list[Row], groups: list[str], methods: list[str], ratio: float,
              command: str) -> str:
    lines = ["# Code compression: functions cut from Python modules", "", f"Command: `{command}`", "",
             f"Budget: {ratio:g} of the context in cl100k tokens ({1 / ratio:g}x). Task lists: `eval/code_tasks.py`.", "",
             "recall = identifier recall (mean over tasks, 95% bootstrap interval, worst task); NLL / full = per-task "
             "ratio of the hidden body's NLL under SmolLM2 given the compressed vs the full context (stdlib only); "
             "parses = share of outputs tree-sitter parses as Python; s/task = seconds to compress on this machine "
             "(model loads excluded); s/20k = the same per 20k context tokens; forward = share of that time in model "
             "forwards (methods that report it).", "", "Methods:", ""] + [f"- `{m}`: {METHOD_NOTES.get(m.split(':')[0], '')}"
                                                          + (f" ({m.split(':', 1)[1]})" if ":" in m else "")
                                                          for m in methods] + [""]
    summaries: dict[str, dict[str, dict]] = {}
    for group in groups:
        group_rows = [r for r in rows if r.group == group]
        if not group_rows:
            continue
        full = {r.task: r.nll for r in group_rows if r.method == "full" and r.nll is not None}
        group_tasks = [t for t in tasks if t.group == group]
        mean_tokens = np.mean([t.context_tokens for t in group_tasks]) if group_tasks else 0
        lines += [f"## {group} ({len(group_tasks)} tasks, mean context {mean_tokens:,.0f} cl100k tokens)", ""]
        table = []
        for method in (["full", "empty"] if full else []) + methods:
            cell = [r for r in group_rows if r.method == method]
            if not cell:
                continue
            s = method_summary(cell, full)
            summaries.setdefault(group, {})[method] = s
            ci = s["recall_ci"]
            nll_ci = s["nll_ratio_ci"]
            table.append([
                method, _fmt(s["achieved"]),
                f"{_fmt(s['recall'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]", _fmt(s["recall_worst"]),
                _fmt(s["nll"]),
                _fmt(s["nll_ratio"]) + (f" [{_fmt(nll_ci[0])}, {_fmt(nll_ci[1])}]" if nll_ci else ""),
                _fmt(s["parses"], "{:.0%}"), _fmt(s["seconds"], "{:.2f}"), _fmt(s["seconds_per_20k"], "{:.2f}"),
                _fmt(s["forward_share"], "{:.0%}"), str(s["failed"]) if s["failed"] else "",
            ])
        lines += [markdown_table(["method", "achieved", "recall [95% CI]", "worst", "NLL", "NLL / full [95% CI]",
                                  "parses", "s/task", "s/20k", "forward", "failed"], table), ""]
    lines += _targets(summaries, methods)
    lines += _per_task(tasks, rows, methods)
    lines += ["", f"_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
              f"{os.cpu_count()} CPU cores, Python {platform.python_version()}._"]
    return "\n".join(lines)


def _targets(summaries: dict, methods: list[str]) -> list[str]:
    """Issue 17's targets for each method, with the worst group next to the mean."""
    if not summaries:
        return []
    table = []
    for method in methods:
        per_group = {g: s[method] for g, s in summaries.items() if method in s}
        if not per_group:
            continue
        recalls = {g: s["recall"] for g, s in per_group.items()}
        third = per_group.get("third-party", {})
        stdlib = per_group.get("stdlib", {})
        worst = min(recalls, key=lambda g: recalls[g])
        table.append([
            method, _fmt(third.get("recall")), f"{_fmt(recalls[worst])} ({worst})",
            _fmt(stdlib.get("nll_ratio")),
            _fmt(min(s["parses"] for s in per_group.values() if s["parses"] is not None), "{:.0%}")
            if any(s["parses"] is not None for s in per_group.values()) else "-",
            _fmt(third.get("seconds_per_20k"), "{:.2f}"), _fmt(third.get("seconds_max"), "{:.2f}"),
        ])
    return ["## Targets (issue 17)", "",
            f"Third-party identifier recall >= {TARGETS['recall']}, stdlib NLL / full <= {TARGETS['nll_ratio']}, "
            f"parses {TARGETS['parses']:.0%}, <= {TARGETS['seconds_per_20k']:g} s per 20k-token third-party task.", "",
            markdown_table(["method", "third-party recall", "worst group recall", "stdlib NLL / full", "parses (worst group)",
                            "third-party s/20k", "slowest task s"], table), ""]


def _per_task(tasks: list[CodeTask], rows: list[Row], methods: list[str]) -> list[str]:
    by = {(r.task, r.method): r for r in rows}
    shown = [m for m in methods if any((t.key, m) in by for t in tasks)]
    versions = {path: (distribution, version) for distribution, version, path, _ in THIRD_PARTY_TASKS}
    table = []
    for t in tasks:
        cells = [_fmt(by[(t.key, m)].recall, "{:.2f}") if (t.key, m) in by else "" for m in shown]
        source = t.version if t.group == "stdlib" else " ".join(versions.get(t.path, ("", "")))
        table.append([t.group, f"{t.path}:{t.function}", source, t.context_tokens, t.target_tokens] + cells)
    return ["## Tasks and identifier recall per task", "",
            markdown_table(["group", "module:function", "source", "context tokens", "target tokens"] + shown, table)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default=",".join(GROUPS))
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--name", default="code", help="results file name (eval/results/<name>.md)")
    parser.add_argument("--no-nll", action="store_true", help="skip target NLL (no SmolLM2 forwards)")
    parser.add_argument("--fresh", action="store_true", help="ignore rows already in eval/results/<name>.jsonl")
    args = parser.parse_args()
    groups, names = args.groups.split(","), args.methods.split(",")
    command = f"python -m eval.code --groups {args.groups} --methods {args.methods} --ratio {args.ratio:g}" + (
        " --no-nll" if args.no_nll else "") + (f" --name {args.name}" if args.name != "code" else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"{args.name}.jsonl"
    if args.fresh and log.exists():
        log.unlink()
    tasks, rows = run(groups, names, args.ratio, log, () if args.no_nll else NLL_GROUPS)
    print(f"wrote {write_results(args.name, summarise(tasks, rows, groups, names, args.ratio, command))}")


if __name__ == "__main__":
    main()
