"""Truncation baseline: keep the head, the tail, or both ends of the input, word by word."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.segment import split_documents
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.select import SelectionOptions, Units

KEEP = ("head", "tail", "both")


@dataclass
class TruncateCompressor(ScoringCompressor):
    """keep="head" keeps the beginning, "tail" the end, "both" the two ends meeting in the middle."""

    keep: str = "head"
    unit: str = "word"
    protection: Protection = Protection()
    method = "truncate"

    def __post_init__(self) -> None:
        if self.keep not in KEEP:
            raise InvalidInputError(f"keep must be one of {KEEP}, got {self.keep!r}")

    def selection(self, request: Request) -> SelectionOptions:
        return SelectionOptions(skip=False)  # an unbroken run from each end, never words picked past a gap

    def score_units(self, request: Request) -> Units:
        doc, start, end = split_documents(request.documents, self.unit)
        position = np.arange(len(doc), dtype=np.float64)
        if self.keep == "head":
            score = -position
        elif self.keep == "tail":
            score = position
        else:  # distance to the nearer end, so both ends grow towards the middle
            score = -np.minimum(position, len(doc) - 1 - position)
        return Units.build(doc, start, end, score)
