"""One test holds every registered method to the contract the README promises (tests/support/contract.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ctxzip import CompressionResult, TruncateCompressor, available_methods, create_compressor
from tests.support.contract import check_contract, factories


@pytest.mark.parametrize("method", available_methods())
def test_every_method_keeps_the_contract(method, tiny_lm, tiny_token_classifier):
    make = factories(tiny_lm, tiny_token_classifier).get(method, lambda **o: create_compressor(method, **o))
    check_contract(make)


@dataclass
class OverBudget(TruncateCompressor):
    """Broken on purpose: reports the budget it was given but sends the whole input."""

    def compress(self, inputs, query=None, budget=None):
        result = super().compress(inputs, query, budget)
        whole = super().compress(inputs, query, 100_000)
        return CompressionResult(**{**whole.__dict__, "budget_tokens": result.budget_tokens})


@dataclass
class Rewriting(TruncateCompressor):
    """Broken on purpose: its output is not slices of the input (it shouts)."""

    def compress(self, inputs, query=None, budget=None):
        result = super().compress(inputs, query, budget)
        result.text = result.text.upper()
        return result


@dataclass
class LosesMetadata(TruncateCompressor):
    """Broken on purpose: output documents lose their metadata."""

    def compress(self, inputs, query=None, budget=None):
        result = super().compress(inputs, query, budget)
        for document in result.documents:
            document.metadata = {}
        return result


@pytest.mark.parametrize("broken", [OverBudget, Rewriting, LosesMetadata])
def test_the_contract_test_catches_a_broken_method(broken):
    with pytest.raises(AssertionError):
        check_contract(lambda **options: broken(**options))
