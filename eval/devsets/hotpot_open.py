"""Open-retrieval HotpotQA: each question's top 10 passages from the pool of all HotpotQA paragraphs.

The pool is every (title, text) paragraph of hotpot_dev_distractor_v1 (gold and distractor, all
questions), de-duplicated, in first-seen order. Retrievers: BM25 (bm25s, English stop words) and MiniLM
cosine, both over "title: text". Passages are handed over in rank order, as a RAG pipeline would.
"""

from __future__ import annotations

import functools

import numpy as np

from ctxzip.document import Document
from eval import datasets
from eval.devsets import DevExample, part_of
from eval.devsets.cache import cache_dir, embed_passages, load_npz, save_npz, top_k_cosine

TOP_K = 10
VERSION = "v1"
RETRIEVERS = ("bm25", "minilm")


@functools.lru_cache(maxsize=1)
def pool() -> tuple[list[str], list[str]]:
    """(titles, texts) of the de-duplicated paragraph pool."""
    seen: dict[tuple[str, str], int] = {}
    for row in datasets._hotpotqa_raw():
        for title, sentences in row["context"]:
            seen.setdefault((title, "".join(sentences)), len(seen))
    keys = list(seen)
    return [k[0] for k in keys], [k[1] for k in keys]


def _indexed_texts() -> list[str]:
    titles, texts = pool()
    return [f"{t}: {x}" for t, x in zip(titles, texts)]


def _bm25_top(questions: list[str]) -> np.ndarray:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(_indexed_texts(), stopwords="en", show_progress=False), show_progress=False)
    tokens = bm25s.tokenize(questions, stopwords="en", show_progress=False, return_ids=False)
    tokens = [t if t else ["the"] for t in tokens]  # a question of stop words only: any fixed order
    ids, _ = retriever.retrieve(tokens, k=TOP_K, show_progress=False, n_threads=1)
    return np.asarray(ids, dtype=np.int64)


def _minilm_top(questions: list[str]) -> np.ndarray:
    path = cache_dir() / f"hotpot_pool_minilm_{VERSION}.npz"
    stored = load_npz(path)
    if stored is None or len(stored["vectors"]) != len(pool()[0]):
        save_npz(path, vectors=embed_passages(_indexed_texts()).astype(np.float16))
        stored = load_npz(path)
    passages = stored["vectors"].astype(np.float32)
    queries = embed_passages(questions)
    return top_k_cosine(queries, passages, TOP_K)


@functools.lru_cache(maxsize=1)
def retrieval() -> dict[str, np.ndarray]:
    """Question ids and the top-10 pool indices per retriever, for every question of the file."""
    path = cache_dir() / f"hotpot_retrieval_{VERSION}.npz"
    stored = load_npz(path)
    if stored is None:
        rows = datasets._hotpotqa_raw()
        questions = [r["question"] for r in rows]
        stored = {"ids": np.array([r["_id"] for r in rows]), "bm25": _bm25_top(questions),
                  "minilm": _minilm_top(questions)}
        save_npz(path, **stored)
    return stored


def supporting_spans(row: dict, documents: list[Document]) -> list[tuple[str, int, int]]:
    """(doc_id, start, end) of the gold supporting sentences among the retrieved passages."""
    paragraphs = {t: list(s) for t, s in row["context"]}
    spans = []
    for title, index in row["supporting_facts"]:
        sentences = paragraphs.get(title)
        if sentences is None or not 0 <= index < len(sentences):
            continue
        text = "".join(sentences)
        start = sum(len(x) for x in sentences[:index])
        sentence = sentences[index]
        lead = len(sentence) - len(sentence.lstrip())
        for doc in documents:
            if doc.metadata["title"] == title and doc.text == text:
                spans.append((doc.id, start + lead, start + len(sentence.rstrip())))
    return spans


def load_hotpot_open(retriever: str, part: str) -> list[DevExample]:
    if retriever not in RETRIEVERS:
        raise ValueError(f"retriever must be one of {RETRIEVERS}")
    titles, texts = pool()
    found = retrieval()
    ranks = found[retriever]
    out = []
    for index, row in enumerate(datasets._hotpotqa_raw()):
        if part_of(datasets.bucket(row["_id"]), 2, 3) != part:
            continue
        answer = row["answer"].strip()
        if answer.lower() in ("yes", "no"):
            continue
        documents, seen = [], {}
        for rank, p in enumerate(ranks[index].tolist()):
            seen[titles[p]] = seen.get(titles[p], 0) + 1
            doc_id = titles[p] if seen[titles[p]] == 1 else f"{titles[p]}#{seen[titles[p]]}"
            documents.append(Document(texts[p], doc_id, {"title": titles[p], "rank": rank}))
        gold_titles = sorted({t for t, _ in row["supporting_facts"]})
        meta = {
            "type": row["type"], "gold_titles": gold_titles,
            "gold_ranks": [r for r, d in enumerate(documents) if d.metadata["title"] in gold_titles],
            "supporting_spans": supporting_spans(row, documents),
        }
        out.append(DevExample(f"{row['_id']}-{retriever}", f"hotpot-{retriever}", row["question"], documents,
                              [answer], meta=meta))
    return out
