"""Putting scores of different scales on one scale (the only normalisers the package uses)."""

from __future__ import annotations

import numpy as np


def standardize(values) -> np.ndarray:
    """Zero mean, unit spread; constant scores become zeros."""
    values = np.asarray(values, dtype=np.float64)
    spread = values.std() if len(values) else 0.0
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def minmax(values) -> np.ndarray:
    """Scaled to [0, 1] within the array; constant scores become zeros."""
    values = np.asarray(values, dtype=np.float64)
    if not len(values):
        return values
    low, high = float(values.min()), float(values.max())
    return np.zeros_like(values) if high - low < 1e-12 else (values - low) / (high - low)


def ranks(values) -> np.ndarray:
    """0 for the highest value, 1 for the next, ...; ties go to the earlier position."""
    values = np.asarray(values, dtype=np.float64)
    order = np.lexsort((np.arange(len(values)), -values))
    result = np.empty(len(values), dtype=np.float64)
    result[order] = np.arange(len(values))
    return result
