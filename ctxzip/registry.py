"""Compressors by name. Entries point at "module:Class" so that listing methods imports nothing heavy.

A new method is a new file in `ctxzip/compressors/` plus one line here (or a `register` call).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ctxzip.errors import InvalidOptionError, UnknownMethodError
from ctxzip.protect import as_protection

_METHODS: dict[str, str | type] = {
    "truncate": "ctxzip.compressors.truncate:TruncateCompressor",
    "random": "ctxzip.compressors.random_select:RandomCompressor",
    "extractive": "ctxzip.compressors.extractive:ExtractiveCompressor",
    "token": "ctxzip.compressors.token_classifier:TokenClassifierCompressor",
    "perplexity": "ctxzip.compressors.perplexity:PerplexityCompressor",
    "code": "ctxzip.compressors.code:CodeCompressor",
    "cascade": "ctxzip.compressors.pipeline:CascadeCompressor",
    "json": "ctxzip.compressors.json_structured:JsonCompressor",
}


def register(name: str, target: str | type) -> None:
    """Register a compressor class (or a "module:Class" path) under `name`."""
    _METHODS[name] = target


def _module_exists(target: str | type) -> bool:
    if not isinstance(target, str):
        return True
    try:
        return importlib.util.find_spec(target.split(":")[0]) is not None
    except ModuleNotFoundError:
        return False


def available_methods() -> list[str]:
    """Names of the methods whose implementation is installed."""
    return sorted(name for name, target in _METHODS.items() if _module_exists(target))


def get_compressor_class(name: str) -> type:
    target = _METHODS.get(name)
    if target is None or not _module_exists(target):
        raise UnknownMethodError(f"unknown method {name!r}; available: {', '.join(available_methods())}")
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_compressor(name: str, **options: Any):
    """Instantiate the compressor registered as `name` with its options."""
    cls = get_compressor_class(name)
    fields = getattr(cls, "__dataclass_fields__", None)
    if fields is not None:
        unknown = sorted(set(options) - {k for k, f in fields.items() if f.init})
        if unknown:
            known = ", ".join(sorted(k for k, f in fields.items() if f.init))
            raise InvalidOptionError(f"method {name!r} has no option {', '.join(map(repr, unknown))}; its options: {known}")
    if "protection" in options:
        options = {**options, "protection": as_protection(options["protection"])}
    return cls(**options)


def resolve_compressor(compressor: Any, options: dict[str, Any] | None = None):
    """A compressor instance as given, or one built from a registered method name (integrations take either)."""
    if isinstance(compressor, str):
        return create_compressor(compressor, **(options or {}))
    if not callable(getattr(compressor, "compress", None)):
        raise TypeError(f"compressor must be a method name or a ctxzip compressor, got {type(compressor).__name__}")
    return compressor
