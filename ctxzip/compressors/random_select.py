"""Random selection baseline: every unit gets a random score (seeded, so runs repeat)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.segment import split_documents
from ctxzip.protect import Protection
from ctxzip.select import Units


@dataclass
class RandomCompressor(ScoringCompressor):
    unit: str = "word"
    seed: int = 0
    protection: Protection = Protection()
    method = "random"

    def score_units(self, request: Request) -> Units:
        doc, start, end = split_documents(request.documents, self.unit)
        rng = np.random.default_rng(self.seed)
        return Units.build(doc, start, end, rng.random(len(doc)))
