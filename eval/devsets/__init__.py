"""Development sets that look like production traffic, with fixed train/dev/eval parts.

| set | what a user would send | gold | metric |
|---|---|---|---|
| `hotpot-bm25` | a HotpotQA question and the top 10 passages BM25 (bm25s) retrieves from the pool of all HotpotQA paragraphs, in rank order | answer string | answer recall |
| `hotpot-minilm` | the same questions, top 10 passages by MiniLM cosine from the same pool, in rank order | answer string | answer recall |
| `squad-chunks` | a SQuAD v2 answerable question and the top 10 of ~120-word chunks (50% overlap) of all SQuAD v2 dev articles by MiniLM cosine, in rank order | answer strings | answer recall |
| `qmsum` | a QMSum query-focused question and the whole meeting transcript (one document, one `speaker: text` line per turn) | relevant turn ranges | gold-span recall |
| `squad-article` | a SQuAD v2 answerable question and its whole article as one document (no retrieval, no rank) | answer strings | answer recall |

The gold passages of a retrieved set are not guaranteed to be among the 10 (the full context's answer
recall is the ceiling). HotpotQA yes/no questions are left out (the answer string cannot be in the text).

Parts are decided by `eval.datasets.bucket` (sha1 of a stable key, mod 10), so they never change:

| set | key | eval | dev | train |
|---|---|---|---|---|
| hotpot-* | question `_id` | bucket < 2 (the `eval.datasets` HotpotQA eval split) | bucket 2 | bucket >= 3 |
| squad-chunks, squad-article | article title (a question's article decides) | bucket < 3 (the `eval.datasets` SQuAD eval split) | bucket 3-4 | bucket >= 5 |
| qmsum | the meeting (its first 20 turns' text) | bucket < 4 | bucket 4-5 | bucket >= 6 |

Training reads only train parts, tuning (epoch choice, thresholds) only dev parts; reports use eval
parts. Retrieval pools are corpora, not labels: the HotpotQA pool holds every paragraph of the file and
the SQuAD pool every article's chunks, whatever the question's part.

Built sets are cached under `eval/.cache/devsets/` (git-ignored): the MiniLM embeddings of the pools
and the retrieved passage ids. Building is deterministic; delete the folder to rebuild. The first build
embeds ~67k HotpotQA paragraphs (minutes on 2 cores), so run it under the heavy-job lock:

    flock /tmp/ctxzip-heavy.lock .venv/bin/python -m eval.devsets build
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ctxzip.document import Document
from ctxzip.errors import InvalidInputError

PARTS = ("train", "dev", "eval")
SETS = ("hotpot-bm25", "hotpot-minilm", "squad-chunks", "qmsum", "squad-article")


@dataclass
class DevExample:
    """One request: documents in the order the user's pipeline hands them over, and the gold.

    answers: gold answer strings (answer recall); gold_spans: (doc_id, start, end) character spans
    whose kept share is the gold-span recall (QMSum); meta: set-specific facts for analysis."""

    id: str
    set_name: str
    question: str
    documents: list[Document]
    answers: list[str] = field(default_factory=list)
    gold_spans: list[tuple[str, int, int]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return "span" if self.gold_spans else "answer"


def part_of(bucket: int, eval_below: int, dev_below: int) -> str:
    if bucket < eval_below:
        return "eval"
    return "dev" if bucket < dev_below else "train"


def check_part(part: str) -> None:
    if part not in PARTS:
        raise InvalidInputError(f"part must be one of {PARTS}, got {part!r}")


def load_devset(name: str, part: str = "eval", limit: int | None = None, seed: int = 0) -> list[DevExample]:
    """Examples of one set and part; with `limit`, a seeded sample (the same one every run)."""
    check_part(part)
    if name in ("hotpot-bm25", "hotpot-minilm"):
        from eval.devsets.hotpot_open import load_hotpot_open

        examples = load_hotpot_open(name.split("-", 1)[1], part)
    elif name == "squad-chunks":
        from eval.devsets.squad_chunks import load_squad_chunks

        examples = load_squad_chunks(part)
    elif name == "squad-article":
        from eval.devsets.squad_article import load_squad_article

        examples = load_squad_article(part)
    elif name == "qmsum":
        from eval.devsets.qmsum import load_qmsum

        examples = load_qmsum(part)
    else:
        raise InvalidInputError(f"dev set must be one of {SETS}, got {name!r}")
    if limit is not None and limit < len(examples):
        examples = list(examples)
        random.Random(seed).shuffle(examples)
        examples = examples[:limit]
    return sorted(examples, key=lambda e: e.id)  # queries on one document stay together (embedding reuse)


def build_all() -> None:
    """Build every cached retrieval (what `python -m eval.devsets build` runs)."""
    for name in SETS:
        for part in PARTS:
            print(name, part, len(load_devset(name, part)), flush=True)
