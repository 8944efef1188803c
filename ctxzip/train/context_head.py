"""Train the context head (see `ctxzip.relevance.context_head`) on HotpotQA supporting sentences, train split only.

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m ctxzip.train context --questions 1200

Embeds the sentences of `--questions` train-split questions with MiniLM once, builds the features,
and fits a small MLP (a few seconds). 10% of those questions are held out: the epoch with the best
dev recall@4 is kept (with dropout, so the MLP does not memorise the 384 product features).
`--cache` keeps the features on disk so refits skip the embedding.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from ctxzip.relevance.context_head import SHIPPED_HEAD, ContextHeadScorer


def labels_for(task, documents, gold_spans) -> np.ndarray:
    """1 for a sentence unit that covers at least half of a gold supporting sentence."""
    labels = np.zeros(len(task), dtype=np.float32)
    doc_index = {d.id: i for i, d in enumerate(documents)}
    for doc_id, start, end in gold_spans:
        d = doc_index.get(doc_id)
        if d is None:
            continue
        rows = np.flatnonzero(task.sentence_doc == d)
        overlap = np.minimum(task.sentence_end[rows], end) - np.maximum(task.sentence_start[rows], start)
        labels[rows[overlap >= 0.5 * (end - start)]] = 1.0
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctxzip.train context", description=__doc__)
    parser.add_argument("--output", default=str(SHIPPED_HEAD))
    parser.add_argument("--questions", type=int, default=1200)
    parser.add_argument("--expand", type=float, default=0.3, help="share of questions also seen with an expanded query")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="", help="npz file for the features (reused when it exists)")
    args = parser.parse_args(argv)

    import torch

    from ctxzip.compressors.extractive import _task
    from eval.datasets import load_hotpotqa  # fixed split; only "train" is read here

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = random.Random(args.seed)
    examples = load_hotpotqa("train")
    rng.shuffle(examples)
    examples = examples[: args.questions]
    started = time.perf_counter()

    scorer = ContextHeadScorer()
    tasks, labels, queries, owners = [], [], [], []
    for k, ex in enumerate(examples):
        documents = ex.documents()
        gold = ex.supporting_spans()
        task = _task(documents, ex.question)
        y = labels_for(task, documents, gold)
        tasks.append(task)
        labels.append(y)
        queries.append(ex.question)
        owners.append(k)
        positives = np.flatnonzero(y)
        if len(positives) and rng.random() < args.expand:  # the query a second round would build
            hop = task.sentences[int(rng.choice(positives.tolist()))]
            tasks.append(task)
            labels.append(y)
            queries.append(f"{ex.question} {hop}")
            owners.append(k)
    if args.cache and Path(args.cache).exists():
        with np.load(args.cache) as stored:
            features = [stored[f"f{i}"] for i in range(len(tasks))]
    else:
        prepared = scorer.prepare(tasks)  # repeated tasks (expanded queries) embed their sentences once
        features = scorer.features(tasks, queries, prepared)
        if args.cache:
            np.savez(args.cache, **{f"f{i}": f for i, f in enumerate(features)})
    embed_seconds = time.perf_counter() - started

    dev_questions = set(range(int(0.9 * len(examples)), len(examples)))
    train_rows = [i for i, k in enumerate(owners) if k not in dev_questions]
    dev_rows = [i for i, k in enumerate(owners) if k in dev_questions and queries[i] == examples[k].question]
    x = np.concatenate([features[i] for i in train_rows])
    y = np.concatenate([labels[i] for i in train_rows])
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6

    from ctxzip.relevance.context_head import mlp_probabilities

    def recall_at(scores_of, k=4):
        """Dev check on held-out train-split questions: share of supporting sentences in the top k."""
        hits = []
        for i in dev_rows:
            top = np.argsort(-scores_of(i))[:k]
            if labels[i].sum():
                hits.append(labels[i][top].sum() / labels[i].sum())
        return float(np.mean(hits)) if hits else float("nan")

    model = torch.nn.Sequential(torch.nn.Dropout(args.dropout), torch.nn.Linear(x.shape[1], args.hidden),
                                torch.nn.ReLU(), torch.nn.Dropout(args.dropout), torch.nn.Linear(args.hidden, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=args.weight_decay)
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    yt = torch.from_numpy(y)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def current_head() -> dict:
        return {
            "mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "w1": model[1].weight.detach().numpy().T.copy(), "b1": model[1].bias.detach().numpy().copy(),
            "w2": model[4].weight.detach().numpy().T.copy(), "b2": model[4].bias.detach().numpy().copy(),
        }

    head, dev_head, best_epoch = None, -1.0, 0
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xt))
        total = 0.0
        for begin in range(0, len(order), 512):
            batch = order[begin : begin + 512]
            loss = loss_fn(model(xt[batch]).squeeze(-1), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        candidate = current_head()
        dev = recall_at(lambda i: mlp_probabilities(candidate, features[i]))
        print(f"epoch {epoch + 1} loss {total / len(xt):.4f} dev recall@4 {dev:.4f}", flush=True)
        if dev > dev_head:
            head, dev_head, best_epoch = candidate, dev, epoch + 1

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output, **head)
    dev_cosine = recall_at(lambda i: features[i][:, 384])
    manifest = {
        "dataset": "HotpotQA dev distractor (hotpot_dev_distractor_v1.json.gz), eval.datasets train split only",
        "split_rule": "sha1(_id) % 10 >= 2 (the eval split is sha1 % 10 < 2 and never read)",
        "questions": len(examples), "dev_questions_held_out": len(dev_questions), "rows": int(len(x)),
        "positives": int(y.sum()), "expanded_query_share": args.expand, "hidden": args.hidden,
        "epochs": args.epochs, "best_epoch": best_epoch, "dropout": args.dropout, "weight_decay": args.weight_decay,
        "seed": args.seed, "embed_seconds": round(embed_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "dev_recall_at_4_head": round(dev_head, 4), "dev_recall_at_4_cosine": round(dev_cosine, 4),
        "command": "python -m ctxzip.train context " + " ".join(argv or []),
    }
    (output.parent / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest, indent=2))
    return 0
