"""Loaders for the evaluation sets in ../shared/data, each with a fixed train/eval split.

Splits are decided by a hash of a stable key, so they never change between runs or machines:

| set | key | eval part | train part |
|---|---|---|---|
| HotpotQA dev (distractor) | question `_id` | sha1 % 10 < 2 (about 20%) | the rest |
| SQuAD v2 dev | article title (so no paragraph is in both) | sha1 % 10 < 3 | the rest |
| GSM8K | file | `test.jsonl` and `prompt_hardest.txt` | `train.jsonl` |
| BBH | task + input | sha1 % 10 < 5 | the rest; the CoT prompts are demonstrations (train) |
| WikiText-2 | - | the test file (CRLF normalised) | - |
| HumanEval | - | all 164 | - |
| Python stdlib modules | path relative to the stdlib | sha1 % 10 < 3 | the rest |

Training code may only use the train parts. The data folder is `$CTXZIP_DATA`, else `../shared/data`
beside the repository.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

from ctxzip.document import Document

SPLITS = ("train", "eval")


def data_dir() -> Path:
    configured = os.environ.get("CTXZIP_DATA")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def bucket(key: str) -> int:
    """A stable number 0-9 from a key (sha1, not Python's salted hash)."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 10


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


# --- HotpotQA -------------------------------------------------------------------------------


@dataclass
class Paragraph:
    title: str
    sentences: list[str]

    @property
    def text(self) -> str:
        return "".join(self.sentences)

    def sentence_span(self, index: int) -> tuple[int, int]:
        """Character span of sentence `index` in `text`, without its surrounding whitespace."""
        start = sum(len(s) for s in self.sentences[:index])
        sentence = self.sentences[index]
        lead = len(sentence) - len(sentence.lstrip())
        return start + lead, start + len(sentence.rstrip())


@dataclass
class HotpotExample:
    id: str
    question: str
    answer: str
    type: str  # "bridge" or "comparison"
    level: str
    paragraphs: list[Paragraph]
    supporting: list[tuple[str, int]]  # (title, sentence index)

    def documents(self) -> list[Document]:
        """One Document per paragraph, id = title (made unique), metadata = title."""
        docs, seen = [], {}
        for p in self.paragraphs:
            seen[p.title] = seen.get(p.title, 0) + 1
            doc_id = p.title if seen[p.title] == 1 else f"{p.title}#{seen[p.title]}"
            docs.append(Document(p.text, doc_id, {"title": p.title}))
        return docs

    def supporting_spans(self) -> list[tuple[str, int, int]]:
        """(doc_id, start, end) of each gold supporting sentence that exists in the context."""
        by_title = {p.title: p for p in self.paragraphs}
        spans = []
        for title, index in self.supporting:
            p = by_title.get(title)
            if p is not None and 0 <= index < len(p.sentences):
                spans.append((title, *p.sentence_span(index)))
        return spans


@functools.lru_cache(maxsize=1)
def _hotpotqa_raw() -> list[dict]:
    with gzip.open(data_dir() / "hotpotqa" / "hotpot_dev_distractor_v1.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def load_hotpotqa(split: str = "eval", limit: int | None = None) -> list[HotpotExample]:
    _check_split(split)
    wanted = split == "eval"
    out = []
    for row in _hotpotqa_raw():
        if (bucket(row["_id"]) < 2) != wanted:
            continue
        out.append(
            HotpotExample(
                row["_id"], row["question"], row["answer"], row["type"], row["level"],
                [Paragraph(t, list(s)) for t, s in row["context"]],
                [(t, int(i)) for t, i in row["supporting_facts"]],
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


# --- SQuAD v2 --------------------------------------------------------------------------------


@dataclass
class SquadExample:
    id: str
    question: str
    answers: list[str]
    context: str
    title: str
    is_impossible: bool


@functools.lru_cache(maxsize=1)
def _squad_raw() -> dict:
    with gzip.open(data_dir() / "squad" / "dev-v2.0.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def load_squad(split: str = "eval", limit: int | None = None, answerable: bool | None = None) -> list[SquadExample]:
    """Questions of the split; `answerable=True/False` keeps only answerable/unanswerable ones."""
    _check_split(split)
    wanted = split == "eval"
    out = []
    for article in _squad_raw()["data"]:
        if (bucket(article["title"]) < 3) != wanted:
            continue
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible"))
                if answerable is not None and answerable == impossible:
                    continue
                answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                out.append(SquadExample(qa["id"], qa["question"], answers, paragraph["context"], article["title"], impossible))
                if limit is not None and len(out) >= limit:
                    return out
    return out


# --- GSM8K, BBH ------------------------------------------------------------------------------


@dataclass
class QAExample:
    id: str
    question: str
    answer: str
    meta: dict = field(default_factory=dict)


def load_gsm8k(split: str = "eval", limit: int | None = None) -> list[QAExample]:
    _check_split(split)
    name = "test.jsonl" if split == "eval" else "train.jsonl"
    out = []
    with open(data_dir() / "gsm8k" / name, encoding="utf-8") as f:
        for index, line in enumerate(f):
            row = json.loads(line)
            final = row["answer"].rsplit("####", 1)[-1].strip()
            out.append(QAExample(f"gsm8k-{split}-{index}", row["question"], final, {"solution": row["answer"]}))
            if limit is not None and len(out) >= limit:
                break
    return out


def load_gsm8k_prompt() -> str:
    """The 8-exemplar chain-of-thought prompt the LLMLingua papers compress (eval material)."""
    return (data_dir() / "gsm8k" / "prompt_hardest.txt").read_text(encoding="utf-8")


def bbh_tasks() -> list[str]:
    return sorted(p.stem for p in (data_dir() / "bbh" / "bbh").glob("*.json"))


def load_bbh(split: str = "eval", task: str | None = None, limit: int | None = None) -> list[QAExample]:
    _check_split(split)
    wanted = split == "eval"
    out = []
    for name in [task] if task else bbh_tasks():
        rows = json.loads((data_dir() / "bbh" / "bbh" / f"{name}.json").read_text(encoding="utf-8"))["examples"]
        for index, row in enumerate(rows):
            if (bucket(f"{name}\n{row['input']}") < 5) != wanted:
                continue
            out.append(QAExample(f"bbh-{name}-{index}", row["input"], row["target"], {"task": name}))
            if limit is not None and len(out) >= limit:
                return out
    return out


def load_bbh_cot_prompt(task: str) -> str:
    """The task's few-shot chain-of-thought demonstrations (train material), canary header removed."""
    text = (data_dir() / "bbh" / "cot-prompts" / f"{task}.txt").read_text(encoding="utf-8")
    return text.split("-----\n", 1)[-1]


# --- WikiText-2, HumanEval, stdlib code ------------------------------------------------------


def load_wikitext2() -> str:
    """WikiText-2 raw test text with CRLF line endings normalised to LF."""
    return (data_dir() / "wikitext2" / "wiki.test.raw").read_text(encoding="utf-8").replace("\r\n", "\n")


def load_humaneval() -> list[dict]:
    with gzip.open(data_dir() / "humaneval" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class CodeModule:
    path: str  # relative to the stdlib folder
    text: str


def load_stdlib_modules(split: str = "eval", min_lines: int = 0, limit: int | None = None) -> list[CodeModule]:
    """Python modules of the running interpreter's standard library (tests and site-packages excluded)."""
    _check_split(split)
    wanted = split == "eval"
    root = Path(sysconfig.get_paths()["stdlib"])
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("site-packages/", "test/", "idlelib/idle_test/")) or "/tests/" in rel or "/test/" in rel:
            continue
        if (bucket(rel) < 3) != wanted:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.count("\n") < min_lines:
            continue
        out.append(CodeModule(rel, text))
        if limit is not None and len(out) >= limit:
            break
    return out
