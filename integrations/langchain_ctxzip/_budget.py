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


class CompressorSpec:
    """Mixin for the pydantic LangChain classes: the budget is checked before pydantic sees it (so a
    bad one raises ctxzip's own error type) and the compressor is built on first use, once.
    The class using it declares `budget`, `compressor`, `compressor_options` and `_instance`."""

    def __init__(self, **data: Any) -> None:
        if "budget" in data:
            data["budget"] = resolve_budget(data["budget"])
        super().__init__(**data)

    @property
    def ctxzip_compressor(self):
        """The ctxzip compressor (a model-based one loads its model once)."""
        if self._instance is None:
            self._instance = resolve_compressor(self.compressor, self.compressor_options)
        return self._instance
