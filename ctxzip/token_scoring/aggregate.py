"""Sub-token values -> unit values, vectorised: each token goes to the unit holding its first character."""

from __future__ import annotations

import numpy as np


def token_units(token_starts: np.ndarray, unit_starts: np.ndarray, unit_ends: np.ndarray) -> np.ndarray:
    """For each token (by character start) the index of the unit that contains it, or -1."""
    token_starts = np.asarray(token_starts, dtype=np.int64)
    index = np.searchsorted(unit_ends, token_starts, side="right")
    inside = index < len(unit_ends)
    inside[inside] &= unit_starts[index[inside]] <= token_starts[inside]
    return np.where(inside, index, -1)


def unit_mean(values: np.ndarray, unit_of_token: np.ndarray, n_units: int, empty: float | None = None) -> np.ndarray:
    """Mean of the token values per unit; units without tokens get `empty` (default: the overall mean)."""
    values = np.asarray(values, dtype=np.float64)
    valid = unit_of_token >= 0
    sums = np.bincount(unit_of_token[valid], weights=values[valid], minlength=n_units)[:n_units]
    counts = np.bincount(unit_of_token[valid], minlength=n_units)[:n_units]
    fill = (float(values[valid].mean()) if valid.any() else 0.0) if empty is None else empty
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), fill)

