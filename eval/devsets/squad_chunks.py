"""SQuAD v2 open retrieval over overlapping chunks, as a typical RAG chunker makes them.

Each article's paragraphs are joined with blank lines and cut into windows of 120 words that start
every 60 words (50% overlap; the last window ends at the article's end), sliced from the original text
so spacing survives. The pool is the chunks of all articles of the SQuAD v2 dev file; a question gets
the 10 chunks closest to it by MiniLM cosine, in rank order. Near-duplicate passages (neighbouring
windows) are therefore common, as they are with real chunkers. Only answerable questions are used.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from ctxzip.document import Document
from eval import datasets
from eval.devsets import DevExample, part_of
from eval.devsets.cache import cache_dir, embed_passages, load_npz, save_npz, top_k_cosine

WINDOW_WORDS = 120
STRIDE_WORDS = 60
TOP_K = 10
VERSION = "v1"


def window_starts(n_words: int, window: int = WINDOW_WORDS, stride: int = STRIDE_WORDS) -> list[int]:
    """First word of each window; the last window is moved back so it ends at the last word."""
    if n_words <= window:
        return [0]
    starts = list(range(0, n_words - window + 1, stride))
    if starts[-1] + window < n_words:
        starts.append(n_words - window)
    return starts


def chunk_text(text: str) -> list[str]:
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    return [text[words[s][0] : words[min(s + WINDOW_WORDS, len(words)) - 1][1]] for s in window_starts(len(words))]


@functools.lru_cache(maxsize=1)
def chunks() -> tuple[list[str], list[str]]:
    """(article title, chunk text) of every chunk of every article, in file order."""
    titles, texts = [], []
    for article in datasets._squad_raw()["data"]:
        joined = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        for piece in chunk_text(joined):
            titles.append(article["title"])
            texts.append(piece)
    return titles, texts


def _questions() -> list[tuple[str, str, str, list[str]]]:
    """(id, article title, question, answers) of every answerable question, in file order."""
    out = []
    for article in datasets._squad_raw()["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if not qa.get("is_impossible"):
                    answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                    out.append((qa["id"], article["title"], qa["question"], answers))
    return out


@functools.lru_cache(maxsize=1)
def retrieval() -> np.ndarray:
    path = cache_dir() / f"squad_chunks_retrieval_{VERSION}.npz"
    stored = load_npz(path)
    questions = _questions()
    if stored is None or len(stored["top"]) != len(questions):
        titles, texts = chunks()
        passages = embed_passages([f"{t.replace('_', ' ')}: {x}" for t, x in zip(titles, texts)])
        queries = embed_passages([q[2] for q in questions])
        stored = {"top": top_k_cosine(queries, passages, TOP_K)}
        save_npz(path, **stored)
    return stored["top"]


def load_squad_chunks(part: str) -> list[DevExample]:
    titles, texts = chunks()
    top = retrieval()
    out = []
    for (qid, title, question, answers), ranked in zip(_questions(), top):
        if part_of(datasets.bucket(title), 3, 5) != part:
            continue
        documents = [Document(texts[c], f"chunk-{c}", {"title": titles[c].replace("_", " "), "rank": r})
                     for r, c in enumerate(ranked.tolist())]
        meta = {"article": title, "same_article_ranks": [r for r, c in enumerate(ranked.tolist()) if titles[c] == title]}
        out.append(DevExample(qid, "squad-chunks", question, documents, answers, meta=meta))
    return out
