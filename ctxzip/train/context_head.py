"""Train the context head (see `ctxzip.relevance.context_head`) on a mix of sets, train parts only.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m ctxzip.train context --per-set 1000

Sources and labels: `ctxzip.train.context_data` (open-retrieval HotpotQA in rank order and shuffled,
SQuAD over overlapping chunks, QMSum transcripts, HotpotQA distractor). Sentences are embedded with
MiniLM once (`--embeddings` keeps them on disk, so refits skip it), features are built (version 2:
v1's plus rank, repeats, neighbourhood, surface and question type), and a small MLP is fitted with
every source weighted equally. Each epoch is scored on the dev parts the way `eval.quality` scores
(greedy selection after de-dup at 1/3, 1/6, 1/10; answer or gold-span recall), and the epoch with the
best mean of (mean over sets, worst set) is kept.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from ctxzip.relevance.context_head import SHIPPED_HEAD, ContextHeadScorer, mlp_probabilities, postprocess
from ctxzip.train.context_data import SOURCES

FEATURE_VERSION = 2


def load_embeddings(path: Path | None) -> None:
    """Pre-fill the bi-encoder's cache from disk (texts and vectors saved by `save_embeddings`)."""
    from collections import OrderedDict

    from ctxzip.relevance import bi_encoder

    if path is None or not path.exists():
        return
    with np.load(path, allow_pickle=False) as data:
        cache = bi_encoder._CACHE.setdefault("minilm", OrderedDict())
        cache.update(zip(data["texts"].tolist(), data["vectors"]))


def save_embeddings(path: Path | None) -> None:
    from ctxzip.relevance import bi_encoder

    if path is None:
        return
    cache = bi_encoder._CACHE.get("minilm", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, texts=np.array(list(cache.keys())), vectors=np.stack(list(cache.values())))


def build_features(scorer: ContextHeadScorer, items, expand: float, rng: random.Random):
    """Features of every item with its own query, plus (for a share `expand` of the items with a
    positive) the query a second round builds: the question and one positive sentence."""
    tasks, queries, owners = [], [], []
    for k, item in enumerate(items):
        tasks.append(item.task)
        queries.append(item.task.query)
        owners.append(k)
        positives = np.flatnonzero(item.labels)
        if len(positives) and rng.random() < expand:
            tasks.append(item.task)
            queries.append(f"{item.task.query} {item.task.sentences[int(rng.choice(positives.tolist()))]}")
            owners.append(k)
    features = []
    for begin in range(0, len(tasks), 256):  # bounded batches keep memory flat
        chunk = slice(begin, begin + 256)
        prepared = scorer.prepare(tasks[chunk])
        features += scorer.features(tasks[chunk], queries[chunk], prepared, FEATURE_VERSION)
    return features, owners


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctxzip.train context", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(SHIPPED_HEAD))
    parser.add_argument("--per-set", type=int, default=1000, help="train examples per source (QMSum: all)")
    parser.add_argument("--dev-per-set", type=int, default=150)
    parser.add_argument("--sources", default=",".join(SOURCES))
    parser.add_argument("--expand", type=float, default=0.3, help="share of examples also seen with an expanded query")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embeddings", default="", help="npz of sentence embeddings (read, then updated)")
    args = parser.parse_args(argv)

    import torch

    from ctxzip.budget import get_token_counter
    from ctxzip.relevance.bi_encoder import BiEncoderScorer
    from ctxzip.train import selection_metric
    from ctxzip.train.context_data import collect

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    sources = tuple(s for s in args.sources.split(",") if s)
    train = collect("train", args.per_set, args.seed, sources)
    dev = collect("dev", args.dev_per_set, args.seed, sources)
    print(f"{len(train)} train and {len(dev)} dev examples", flush=True)

    embeddings = Path(args.embeddings) if args.embeddings else None
    load_embeddings(embeddings)
    scorer = ContextHeadScorer(encoder=BiEncoderScorer(cache_size=10_000_000))
    for begin in range(0, len(train) + len(dev), 512):  # embed everything first, and keep it on disk
        scorer.encoder.prepare([item.task for item in (train + dev)[begin : begin + 512]])
        if begin % 2048 == 0:
            save_embeddings(embeddings)
    save_embeddings(embeddings)
    train_features, owners = build_features(scorer, train, args.expand, rng)
    dev_features, _ = build_features(scorer, dev, 0.0, rng)
    embed_seconds = time.perf_counter() - started
    print(f"features in {embed_seconds:.0f} s", flush=True)

    counter = get_token_counter("cl100k_base")
    dev_prepared = [selection_metric.prepare(item, counter) for item in dev]

    x = np.concatenate(train_features).astype(np.float32)
    y = np.concatenate([train[k].labels for k in owners])
    source_of_row = np.concatenate([[train[k].source] * len(f) for k, f in zip(owners, train_features)])
    weights = np.zeros(len(y), dtype=np.float32)
    for source in set(source_of_row.tolist()):  # every source weighs the same in the loss
        rows = source_of_row == source
        weights[rows] = len(y) / (rows.sum() * len(set(source_of_row.tolist())))
    mean, std = x.mean(axis=0, dtype=np.float64), x.std(axis=0, dtype=np.float64) + 1e-6

    model = torch.nn.Sequential(torch.nn.Dropout(args.dropout), torch.nn.Linear(x.shape[1], args.hidden),
                                torch.nn.ReLU(), torch.nn.Dropout(args.dropout), torch.nn.Linear(args.hidden, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=args.weight_decay)
    x -= mean.astype(np.float32)
    x /= std.astype(np.float32)
    xt = torch.from_numpy(x)
    yt, wt = torch.from_numpy(y), torch.from_numpy(weights)

    def current_head() -> dict:
        return {
            "version": np.array(FEATURE_VERSION), "mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "w1": model[1].weight.detach().numpy().T.copy(), "b1": model[1].bias.detach().numpy().copy(),
            "w2": model[4].weight.detach().numpy().T.copy(), "b2": model[4].bias.detach().numpy().copy(),
        }

    best, best_value, history = None, -1.0, []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt))
        total = 0.0
        for begin in range(0, len(order), 512):
            batch = order[begin : begin + 512]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                model(xt[batch]).squeeze(-1), yt[batch], weight=wt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        head = current_head()
        table = selection_metric.report(dev, dev_prepared, [mlp_probabilities(head, f) for f in dev_features])
        mean_value, worst = selection_metric.summary(table)
        value = (mean_value + worst) / 2
        history.append({"epoch": epoch + 1, "loss": round(total / len(xt), 4), "dev_mean": round(mean_value, 4),
                        "dev_worst": round(worst, 4)})
        print(json.dumps(history[-1]), flush=True)
        if value > best_value:
            best, best_value, best_table = head, value, table

    # Smoothing in long documents and the fallback towards the rank prior: chosen on the dev parts, like the epoch.
    probabilities = [mlp_probabilities(best, f) for f in dev_features]
    selectable = selection_metric.selectable_masks(dev, probabilities)
    search = []
    for radius, smooth in ((0, 0.0), (4, 0.5), (8, 0.8), (16, 0.8), (16, 0.9), (32, 0.9), (64, 0.9)):
        for weight, link in [(w, link) for w in (0.0, 0.1, 0.2, 0.3, 0.5, 0.8) for link in (0.0, 0.5)]:
            settings = {"smooth_radius": np.array(radius), "smooth_weight": np.array(smooth, np.float32),
                        "prior_weight": np.array(weight, np.float32), "link_weight": np.array(link, np.float32)}
            scores = [postprocess(item.task, p, settings) for item, p in zip(dev, probabilities)]
            table = selection_metric.report(dev, dev_prepared, scores, selectable)
            mean_value, worst = selection_metric.summary(table)
            search.append({"smooth_radius": radius, "smooth_weight": smooth, "prior_weight": weight, "link_weight": link,
                           "dev_mean": round(mean_value, 4), "dev_worst": round(worst, 4), "table": table})
            print(json.dumps({k: v for k, v in search[-1].items() if k != "table"}), flush=True)
    chosen = max(search, key=lambda row: (row["dev_mean"] + row["dev_worst"]) / 2)
    for key in ("smooth_radius", "smooth_weight", "prior_weight", "link_weight"):
        best[key] = np.array(chosen[key], dtype=np.float32)
    best_table = chosen["table"]

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **best)
    cosine_table = selection_metric.report(dev, dev_prepared, [f[:, 384] for f in dev_features])
    manifest = {
        "feature_version": FEATURE_VERSION,
        "sources": {s: sum(1 for item in train if item.source == s) for s in sources},
        "dev_examples": {s: sum(1 for item in dev if item.source == s) for s in sources},
        "parts": "eval.devsets train parts for training, dev parts for the epoch choice; HotpotQA distractor: "
                 "eval.datasets train split (sha1(_id) % 10 >= 2)",
        "rows": int(len(x)), "positives": int(y.sum()), "expanded_query_share": args.expand,
        "hidden": args.hidden, "epochs": args.epochs, "dropout": args.dropout, "weight_decay": args.weight_decay,
        "seed": args.seed, "feature_seconds": round(embed_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1), "history": history,
        "postprocess": {k: chosen[k] for k in ("smooth_radius", "smooth_weight", "prior_weight", "link_weight")},
        "postprocess_search": [{k: v for k, v in row.items() if k != "table"} for row in search],
        "dev_selection_recall_head": best_table, "dev_selection_recall_cosine": cosine_table,
        "command": "python -m ctxzip.train context " + " ".join(argv or []),
    }
    (output.parent / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: manifest[k] for k in ("sources", "dev_selection_recall_head",
                                               "dev_selection_recall_cosine")}, indent=2))
    return 0
