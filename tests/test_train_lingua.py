"""The distillation pipeline's pieces that need no causal LM: targets, label files, alignment, shipped heads."""

import gzip
import json

import numpy as np
import pytest

from ctxzip.train.lingua_labels import evidence_target, percentile_rank, read_labels


def test_percentile_rank_orders_and_ties():
    ranks = percentile_rank(np.array([3.0, 1.0, 2.0, 2.0]))
    assert ranks[1] == 0.0 and ranks[0] == 1.0
    assert ranks[2] == ranks[3] == pytest.approx(0.5)
    assert percentile_rank(np.array([5.0])).tolist() == [1.0]


def test_evidence_target_takes_the_strongest_overlap():
    starts, ends = np.array([0, 4, 10]), np.array([4, 10, 15])
    target = evidence_target(starts, ends, [(0, 12, 0.8), (5, 8, 1.0)])
    assert target.tolist() == [0.8, 1.0, 0.8]


def test_read_labels_survives_a_killed_writer(tmp_path):
    path = tmp_path / "labels.jsonl.gz"
    with gzip.open(path, "at", encoding="utf-8") as f:
        f.write(json.dumps({"id": "a"}) + "\n")
    with gzip.open(path, "at", encoding="utf-8") as f:
        f.write(json.dumps({"id": "b"}) + "\n" + json.dumps({"id": "c"}) * 50)
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # the second member is cut off
    assert [r["id"] for r in read_labels(path)][:1] == ["a"]


def test_encode_record_aligns_word_targets_to_context_subtokens():
    from transformers import AutoTokenizer

    from ctxzip.models import resolve_model_path
    from ctxzip.segment import word_spans
    from ctxzip.train.lingua_fit import encode_record

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
    text = "Paris is the capital of France."
    starts, ends = word_spans(text)
    targets = np.linspace(0, 1, len(starts)).round(3).tolist()
    record = {"text": text, "query": "What is the capital?", "starts": starts.tolist(), "ends": ends.tolist(),
              "agnostic": targets, "question": targets[::-1]}
    ids, token_targets, mask = encode_record(tokenizer, record, "question", True, 64)
    words = tokenizer.convert_ids_to_tokens(ids.tolist())
    assert words[0] == "[CLS]" and words.count("[SEP]") == 2
    assert not mask[: words.index("[SEP]") + 1].any()  # the query carries no targets
    assert token_targets[words.index("paris")] == targets[::-1][0]
    assert token_targets[words.index("france")] == targets[::-1][5]


def test_shipped_head_merges_with_its_base(tmp_path, monkeypatch):
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForTokenClassification

    import ctxzip.models as models

    folder = tmp_path / "weights" / "tiny-head"
    folder.mkdir(parents=True)
    weight = torch.randn(2, 384, dtype=torch.float16)
    save_file({"classifier.weight": weight, "classifier.bias": torch.zeros(2, dtype=torch.float16)}, str(folder / "head.safetensors"))
    (folder / "ctxzip_head.json").write_text(json.dumps({"base": "minilm", "num_labels": 2, "id2label": {"0": "drop", "1": "keep"},
                                                       "max_length": 200, "question_aware": True}))
    monkeypatch.setattr(models, "WEIGHTS", tmp_path / "weights")
    monkeypatch.setenv("CTXZIP_HOME", str(tmp_path / "home"))
    path = models.resolve_model_path("ctxzip/tiny-head")
    model = AutoModelForTokenClassification.from_pretrained(path)
    assert torch.equal(model.classifier.weight, weight.float())
    assert model.config.id2label == {0: "drop", 1: "keep"}
    assert models.resolve_model_path("ctxzip/tiny-head") == path  # merged once
    # the training window and the query input travel to inference
    from ctxzip.token_scoring.classifier import load_token_classifier

    loaded = load_token_classifier("ctxzip/tiny-head", "cpu", None)
    assert loaded.max_length == 200 and loaded.question_aware
    load_token_classifier.cache_clear()
