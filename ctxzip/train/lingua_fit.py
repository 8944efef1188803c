"""Fine-tune MiniLM's top layers and a keep/drop head on the teacher's soft word targets.

Only the top `trainable_layers` encoder layers and the classifier are trained, so the shipped file
holds just those weights (fp16, a few MB); the rest comes from the MiniLM package at load time.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np

from ctxzip.batching import batch_by_length
from ctxzip.token_scoring.aggregate import token_units


def encode_record(tokenizer, record: dict, target_key: str, with_query: bool, max_length: int):
    """input ids, per-token targets and a mask of the context tokens that carry a target."""
    targets = np.asarray(record[target_key] if record.get(target_key) is not None else record["agnostic"])
    pair = with_query and record.get("query")
    if pair:
        enc = tokenizer(record["query"], record["text"], truncation="only_second", max_length=max_length,
                        return_offsets_mapping=True)
    else:
        enc = tokenizer(record["text"], truncation=True, max_length=max_length, return_offsets_mapping=True)
    segment = np.array([s if s is not None else -1 for s in enc.sequence_ids()])
    starts = np.array([a for a, _ in enc["offset_mapping"]])
    in_text = segment == (1 if pair else 0)
    owner = np.full(len(starts), -1)
    owner[in_text] = token_units(starts[in_text], np.asarray(record["starts"]), np.asarray(record["ends"]))
    mask = owner >= 0
    token_targets = np.where(mask, targets[np.maximum(owner, 0)], 0.0)
    return np.asarray(enc["input_ids"]), token_targets.astype(np.float32), mask


def batches(encoded: list, batch_size: int, rng: random.Random):
    """Length-bucketed batches (little padding), in random order."""
    chunks = [rows.tolist() for rows in batch_by_length([len(e[0]) for e in encoded], max_batch_size=batch_size)]
    rng.shuffle(chunks)
    return chunks


def collate(encoded: list, rows: list[int], pad_id: int):
    import torch

    width = max(len(encoded[i][0]) for i in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.zeros((len(rows), width))
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        x, t, m = encoded[i]
        ids[r, : len(x)] = torch.from_numpy(x)
        targets[r, : len(x)] = torch.from_numpy(t)
        mask[r, : len(x)] = torch.from_numpy(m)
        attention[r, : len(x)] = 1
    return ids, attention, targets, mask


def trainable_names(model, trainable_layers: int) -> list[str]:
    layers = model.config.num_hidden_layers
    prefixes = [f"bert.encoder.layer.{i}." for i in range(layers - trainable_layers, layers)] + ["classifier."]
    return [n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes))]


def fit(records: list[dict], out_dir: Path, *, with_query: bool, epochs: int = 2, batch_size: int = 16,
        lr: float = 1e-4, trainable_layers: int = 2, max_length: int = 256, seed: int = 0,
        validation_share: float = 0.05) -> dict:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from ctxzip.models import resolve_model_path

    torch.manual_seed(seed)
    rng = random.Random(seed)
    base = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(base, num_labels=2)
    names = set(trainable_names(model, trainable_layers))
    for name, param in model.named_parameters():
        param.requires_grad = name in names

    target_key = "question" if with_query else "agnostic"
    shuffled = records[:]
    rng.shuffle(shuffled)
    n_val = max(1, int(validation_share * len(shuffled)))
    encoded = [encode_record(tokenizer, r, target_key, with_query, max_length) for r in shuffled]
    val, train = encoded[:n_val], encoded[n_val:]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    steps = epochs * len(batches(train, batch_size, random.Random(0)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def keep_logits(ids, attention):
        logits = model(input_ids=ids, attention_mask=attention).logits
        return logits[..., 1] - logits[..., 0]  # log-odds of "keep" under the 2-way softmax

    started = time.time()
    history = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for rows in batches(train, batch_size, rng):
            ids, attention, targets, mask = collate(train, rows, tokenizer.pad_token_id)
            loss = loss_fn(keep_logits(ids, attention)[mask], targets[mask])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total, count = total + loss.item(), count + 1
        metrics = evaluate(model, val, tokenizer.pad_token_id, keep_logits)
        history.append({"epoch": epoch + 1, "train_loss": total / max(count, 1), **metrics,
                        "seconds": round(time.time() - started, 1)})
        print(json.dumps(history[-1]), flush=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {n: p.detach().to(torch.float16).contiguous() for n, p in model.named_parameters() if n in names}
    save_file(state, str(out_dir / "head.safetensors"))
    config = {"base": "minilm", "num_labels": 2, "id2label": {"0": "drop", "1": "keep"}, "max_length": max_length,
              "question_aware": with_query, "trainable_layers": trainable_layers, "target": target_key}
    (out_dir / "ctxzip_head.json").write_text(json.dumps(config, indent=2) + "\n")
    return {"history": history, "train_records": len(train), "validation_records": len(val),
            "trainable_parameters": int(sum(p.numel() for p in state.values()))}


def evaluate(model, encoded, pad_id, keep_logits) -> dict:
    """Validation loss and the rank correlation of predicted keep odds with the teacher's targets."""
    import torch
    from scipy.stats import spearmanr

    model.eval()
    predictions, targets = [], []
    with torch.inference_mode():
        for start in range(0, len(encoded), 32):
            rows = list(range(start, min(start + 32, len(encoded))))
            ids, attention, target, mask = collate(encoded, rows, pad_id)
            predictions.append(keep_logits(ids, attention)[mask])
            targets.append(target[mask])
    p, t = torch.cat(predictions), torch.cat(targets)
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(p, t))
    return {"val_loss": loss, "val_spearman": float(spearmanr(p.numpy(), t.numpy()).statistic)}
