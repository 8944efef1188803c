"""Where built dev sets live (git-ignored) and how they are written (atomically, so a killed build
leaves no half file behind)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    configured = os.environ.get("CTXZIP_DEVSET_CACHE")
    folder = Path(configured) if configured else Path(__file__).resolve().parents[1] / ".cache" / "devsets"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def embed_passages(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit MiniLM vectors (float32) of passages, longest first so batches pad little."""
    from ctxzip.models import load_sentence_encoder

    encoder = load_sentence_encoder("minilm")
    order = np.argsort([-len(t) for t in texts], kind="stable")
    vectors = encoder.encode([texts[i] for i in order], batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=len(texts) > 5000)
    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
    out[order] = vectors
    return out


def top_k_cosine(queries: np.ndarray, passages: np.ndarray, k: int, block: int = 256) -> np.ndarray:
    """(n_queries, k) passage indices by descending cosine (unit vectors), ties to the lower index."""
    result = np.empty((len(queries), k), dtype=np.int64)
    for begin in range(0, len(queries), block):
        sims = queries[begin : begin + block] @ passages.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        for row, candidates in enumerate(part):
            values = sims[row, candidates]
            result[begin + row] = candidates[np.lexsort((candidates, -values))]
    return result
