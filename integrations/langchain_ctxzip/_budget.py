"""What the LangChain classes share: turning a compressor spec into a compressor, once."""

from __future__ import annotations

from typing import Any

from ctxzip.budget import as_budget
from ctxzip.registry import resolve_compressor


class CompressorSpec:
    """Mixin for the pydantic LangChain classes: the budget is checked before pydantic sees it (so a
    bad one raises ctxzip's own error type) and the compressor is built on first use, once.
    The class using it declares `budget`, `compressor`, `compressor_options` and `_instance`."""

    def __init__(self, **data: Any) -> None:
        if "budget" in data:
            data["budget"] = as_budget(data["budget"])
        super().__init__(**data)

    @property
    def ctxzip_compressor(self):
        """The ctxzip compressor (a model-based one loads its model once)."""
        if self._instance is None:
            self._instance = resolve_compressor(self.compressor, self.compressor_options)
        return self._instance
