"""Fit the definition-use model of the code compressor (`ctxzip/code_analysis/name_model.json`).

    python -m eval.code_train [--per-module 3]

Data: modules of the **train** split of `eval.datasets.load_stdlib_modules` (150+ lines). In each,
up to `--per-module` functions are cut as `eval.code_tasks` cuts them (docstring, 6-60 body lines),
chosen by a hash of the module path. For every definition left in the module, the features of
`ctxzip.code_analysis.relevance` are computed with the gap at the cut, and the label says whether
the cut function's body mentions the definition's name. A logistic regression (scikit-learn) is
fitted on standardised features; a fifth of the modules (by path hash) is held out to report its
ranking quality (ROC AUC, average precision) before the final fit on everything.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re

import numpy as np

from ctxzip.code_analysis.gap import locate_gap
from ctxzip.code_analysis.graph import build_graph
from ctxzip.code_analysis.query import analyse_query
from ctxzip.code_analysis.relevance import _MODEL, FEATURES, definition_features
from eval.code_tasks import cut_function
from eval.datasets import load_stdlib_modules

_NAME = re.compile(r"[A-Za-z_]\w*")


def candidate_functions(text: str) -> list[str]:
    """Qualified names of functions a task could cut (the benchmark's rule)."""
    tree = ast.parse(text)
    found = []
    for node in tree.body:
        scope = [(None, node)] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else (
            [(node.name, n) for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            if isinstance(node, ast.ClassDef) else [])
        for owner, fn in scope:
            doc = fn.body[0] if fn.body else None
            if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
                continue
            if 6 <= fn.end_lineno - doc.end_lineno <= 60 and len(fn.body) >= 2:
                found.append(f"{owner}.{fn.name}" if owner else fn.name)
    return found


def task_rows(path: str, text: str, qualname: str) -> tuple[np.ndarray, np.ndarray]:
    task = cut_function("train", path, text, qualname)
    document = task.document()
    graph = build_graph([document], ["python"])
    query = analyse_query(task.instruction)
    gap = locate_gap([document], graph, query)
    features = definition_features(graph, gap, query, [task.context])
    used = set(_NAME.findall(task.target))
    labels = np.array([d.name in used for d in graph.definitions], dtype=bool)
    return features, labels


def collect(per_module: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, groups = [], [], []
    for module in load_stdlib_modules("train", min_lines=150):
        try:
            options = candidate_functions(module.text)
        except SyntaxError:
            continue
        if not options:
            continue
        start = int(hashlib.sha1(module.path.encode()).hexdigest(), 16)
        picks = [options[(start + k * 7919) % len(options)] for k in range(min(per_module, len(options)))]
        for qualname in dict.fromkeys(picks):
            features, labels = task_rows(module.path, module.text, qualname)
            if len(labels):
                xs.append(features)
                ys.append(labels)
                groups.append(np.full(len(labels), (start // 10) % 5))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(groups)


def fit(x: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, y)
    return mean, scale, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-module", type=int, default=3)
    args = parser.parse_args()
    from sklearn.metrics import average_precision_score, roc_auc_score

    x, y, groups = collect(args.per_module)
    held = groups == 0
    mean, scale, model = fit(x[~held], y[~held])
    scores = model.decision_function((x[held] - mean) / scale)
    print(f"{len(y)} definitions ({y.mean():.3f} used), held-out {held.sum()}: "
          f"AUC {roc_auc_score(y[held], scores):.3f}, AP {average_precision_score(y[held], scores):.3f}")
    mean, scale, model = fit(x, y)
    _MODEL.write_text(json.dumps({
        "features": list(FEATURES), "mean": mean.round(6).tolist(), "scale": scale.round(6).tolist(),
        "coef": model.coef_[0].round(6).tolist(), "intercept": round(float(model.intercept_[0]), 6),
        "trained_on": f"stdlib train split, {len(y)} definitions, {args.per_module} functions per module",
    }, indent=1) + "\n")
    for name, weight in sorted(zip(FEATURES, model.coef_[0]), key=lambda item: -abs(item[1])):
        print(f"{name:16s} {weight:+.3f}")
    print(f"wrote {_MODEL}")


if __name__ == "__main__":
    main()
