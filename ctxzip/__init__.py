"""ctxzip: compress prompts, retrieved context, code and KV caches under one token budget.

    from ctxzip import Budget, ExtractiveCompressor
    result = ExtractiveCompressor().compress(docs, query="...", budget=Budget(tokens=400))

Heavy parts (torch, transformers, models) load lazily on first use.
"""

from __future__ import annotations

import importlib

from ctxzip.budget import Budget, get_token_counter
from ctxzip.document import CompressionResult, Document, Span
from ctxzip.protect import Protection
from ctxzip.registry import available_methods, create_compressor, register

__version__ = "0.1.0"

_LAZY = {
    "TruncateCompressor": "ctxzip.compressors.truncate",
    "RandomCompressor": "ctxzip.compressors.random_select",
    "ExtractiveCompressor": "ctxzip.compressors.extractive",
    "TokenClassifierCompressor": "ctxzip.compressors.token_classifier",
    "PerplexityCompressor": "ctxzip.compressors.perplexity",
    "CodeCompressor": "ctxzip.compressors.code",
    "CascadeCompressor": "ctxzip.compressors.pipeline",
    "KVCodec": "ctxzip.kv.codec",
}

__all__ = [
    "Budget", "CompressionResult", "Document", "Protection", "Span", "available_methods",
    "create_compressor", "get_token_counter", "register", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ctxzip' has no attribute {name!r}")
