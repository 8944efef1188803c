"""The two adaptations llmlingua 0.2.2 needs to run here (DESIGN.md, "Facts that save time").

1. Its LLMLingua-1 / LongLLMLingua path hands `past_key_values` around as tuples of (key, value);
   transformers 5 models take and return `DynamicCache`. `wrap_legacy_cache` converts at the
   model's forward: tuples -> DynamicCache in, DynamicCache -> tuples out.
2. Its LLMLingua-2 path picks word rules from the model *name* and refuses other names, so the
   distilled MiniLM token classifier is copied to a folder whose name contains `bert-base-multilingual-cased`.
Both happen here, in the harness, not in ctxzip.
"""

from __future__ import annotations

import functools
from pathlib import Path

from ctxzip.budget import get_token_counter
from ctxzip.models import ctxzip_home, resolve_model_path


# The LongLLMLingua recipe from llmlingua's README (question-aware ranking, reordering, dynamic ratios).
LONGLLMLINGUA_RECIPE = dict(
    condition_in_question="after_condition", reorder_context="sort", dynamic_context_compression_ratio=0.3,
    condition_compare=True, context_budget="+100", rank_method="longllmlingua",
)


def ensure_offline_tiktoken() -> None:
    """llmlingua calls tiktoken.encoding_for_model("gpt-3.5-turbo"); this makes cl100k load offline."""
    get_token_counter("cl100k_base")


def distilled_llmlingua2_checkpoint(name: str = "ctxzip/lingua-minilm-v1") -> str:
    """The embedded distilled model, copied to a folder name llmlingua accepts as mBERT-like, so both
    implementations run the same trained checkpoint."""
    import shutil

    from ctxzip.models import resolve_model_path

    source = Path(resolve_model_path(name))
    folder = ctxzip_home() / "bench" / f"{source.name}-bert-base-multilingual-cased"
    if not (folder / "config.json").exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        tmp.rename(folder)
    return str(folder)


def _to_cache(past):
    from transformers import DynamicCache

    if past is None or not isinstance(past, (tuple, list)):
        return past
    return DynamicCache(ddp_cache_data=[(k, v) for k, v in past])


def _to_tuples(cache):
    if cache is None or isinstance(cache, (tuple, list)):
        return cache
    return tuple((layer.keys, layer.values) for layer in cache.layers)


def wrap_legacy_cache(model):
    """Make `model.forward` accept and return llmlingua's tuple KV caches."""
    if getattr(model, "_ctxzip_legacy_cache", False):
        return model
    forward = model.forward

    @functools.wraps(forward)
    def legacy_forward(*args, past_key_values=None, **kwargs):
        output = forward(*args, past_key_values=_to_cache(past_key_values), **kwargs)
        if getattr(output, "past_key_values", None) is not None:
            output.past_key_values = _to_tuples(output.past_key_values)
        return output

    model.forward = legacy_forward
    model._ctxzip_legacy_cache = True
    return model


@functools.lru_cache(maxsize=2)
def llmlingua2_compressor(model_path: str):
    """llmlingua's LLMLingua-2 PromptCompressor on a local token-classification checkpoint (CPU)."""
    ensure_offline_tiktoken()
    if "bert-base-multilingual-cased" not in Path(model_path).name and "xlm-roberta-large" not in Path(model_path).name:
        raise ValueError("llmlingua 0.2.2 needs a folder name with bert-base-multilingual-cased or xlm-roberta-large")
    from llmlingua import PromptCompressor

    return PromptCompressor(model_name=model_path, device_map="cpu", use_llmlingua2=True)


@functools.lru_cache(maxsize=1)
def llmlingua1_compressor(model: str = "smollm2"):
    """llmlingua's LLMLingua-1 / LongLLMLingua PromptCompressor on a local causal LM, cache-adapted."""
    ensure_offline_tiktoken()
    from llmlingua import PromptCompressor

    compressor = PromptCompressor(model_name=resolve_model_path(model), device_map="cpu")
    wrap_legacy_cache(compressor.model)
    return compressor


class LLMLingua1Compressor:
    """llmlingua's LLMLingua-1 behind ctxzip's compress(documents, query, budget) call (eval baseline).

    It gets the same token target as every other method; what it returns is counted with cl100k,
    so over-budget outputs show up in the tables (llmlingua does not promise to meet the target).
    """

    def __init__(self, model: str = "smollm2") -> None:
        self.compressor = llmlingua1_compressor(model)

    def compress(self, documents, query=None, budget=None):
        from ctxzip.budget import get_token_counter
        from ctxzip.document import CompressionResult, as_documents

        docs = as_documents(documents)
        texts = [d.text for d in docs]
        out = self.compressor.compress_prompt(texts, target_token=int(budget.tokens))
        text = out["compressed_prompt"]
        counter = get_token_counter()
        return CompressionResult(text=text, documents=docs, kept=[], original_tokens=counter.count("\n\n".join(texts)),
                                 compressed_tokens=counter.count(text), method="llmlingua-1",
                                 budget_tokens=int(budget.tokens))
