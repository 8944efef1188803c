"""What the LangChain classes share: turning a compressor spec into a compressor, once."""

from __future__ import annotations

from typing import Any

from ctxzip.budget import Budget, as_budget
from ctxzip.registry import create_compressor


def resolve_compressor(compressor: Any, options: dict[str, Any] | None) -> Any:
    """A ctxzip compressor instance as given, or one built from a registered method name."""
    if isinstance(compressor, str):
        return create_compressor(compressor, **(options or {}))
    if not callable(getattr(compressor, "compress", None)):
        raise TypeError(f"compressor must be a method name or a ctxzip compressor, got {type(compressor).__name__}")
    return compressor


def resolve_budget(budget: Budget | int | float) -> Budget:
    return as_budget(budget)
