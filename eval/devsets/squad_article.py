"""SQuAD v2 questions over their whole article: one long document, one short answer somewhere in it.

Each article's paragraphs are joined with blank lines into one document (40 to 300 sentences); the
question is one of the article's answerable questions. Nothing is retrieved and the order carries no
rank, so this set checks what holds for long single documents (reports, manuals): the method must find
one fact in a long text, where smoothing over neighbouring sentences or leaning on position would hurt.
Parts follow squad-chunks (by article title), so an article is never in two parts.
"""

from __future__ import annotations

from ctxzip.document import Document
from eval import datasets
from eval.devsets import DevExample, part_of


def load_squad_article(part: str) -> list[DevExample]:
    out = []
    for article in datasets._squad_raw()["data"]:
        title = article["title"]
        if part_of(datasets.bucket(title), 3, 5) != part:
            continue
        text = "\n\n".join(p["context"].strip() for p in article["paragraphs"])
        document = Document(text, title, {"title": title.replace("_", " ")})
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if qa.get("is_impossible"):
                    continue
                answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                # the article in the id keeps one article's questions together (embeddings are reused)
                out.append(DevExample(f"{title}/{qa['id']}", "squad-article", qa["question"], [document], answers))
    return out
