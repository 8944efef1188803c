"""Training texts for the distilled token classifier, from the *train* splits only.

Each text may carry a question and human evidence spans (HotpotQA supporting sentences, SQuAD
answers) that the question-aware targets use. Sampling is seeded, so the set is reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field


@dataclass
class TrainingText:
    id: str
    source: str
    text: str
    query: str | None = None
    evidence: list[tuple[int, int, float]] = field(default_factory=list)  # (start, end, target)


def _datasets():
    try:
        from eval import datasets
    except ImportError as exc:  # the loaders live in the repository's eval/ package
        raise SystemExit("run training from the repository root (it reads ../shared/data through eval/)") from exc
    return datasets


def hotpotqa_texts(count: int, rng: random.Random) -> list[TrainingText]:
    """Both gold paragraphs and one distractor per question; supporting sentences and answers are evidence."""
    examples = _datasets().load_hotpotqa("train")
    out = []
    for ex in rng.sample(examples, min(count, len(examples))):
        gold_titles = {t for t, _ in ex.supporting}
        distractors = [p for p in ex.paragraphs if p.title not in gold_titles]
        chosen = [p for p in ex.paragraphs if p.title in gold_titles] + distractors[:1]
        for p in chosen:
            evidence = [(*p.sentence_span(i), 0.8) for t, i in ex.supporting if t == p.title and i < len(p.sentences)]
            evidence += _answer_spans(p.text, [ex.answer])
            out.append(TrainingText(f"hotpotqa-{ex.id}-{p.title}", "hotpotqa", p.text, ex.question, evidence))
    return out


def squad_texts(count: int, rng: random.Random) -> list[TrainingText]:
    examples = _datasets().load_squad("train", answerable=True)
    return [
        TrainingText(f"squad-{ex.id}", "squad", ex.context, ex.question, _answer_spans(ex.context, ex.answers))
        for ex in rng.sample(examples, min(count, len(examples)))
    ]


def gsm8k_texts(count: int, rng: random.Random) -> list[TrainingText]:
    """Worked solutions as demonstrations (question + solution, no separate query)."""
    examples = _datasets().load_gsm8k("train")
    return [
        TrainingText(ex.id, "gsm8k", f"Question: {ex.question}\nAnswer: {ex.meta['solution']}")
        for ex in rng.sample(examples, min(count, len(examples)))
    ]


def bbh_texts() -> list[TrainingText]:
    """Each chain-of-thought demonstration of each BBH task (the prompts are train material)."""
    datasets = _datasets()
    out = []
    for task in datasets.bbh_tasks():
        prompt = datasets.load_bbh_cot_prompt(task)
        for index, block in enumerate(re.split(r"\n\n(?=Q: )", prompt)):
            if block.strip():
                out.append(TrainingText(f"bbh-{task}-{index}", "bbh", block.strip()))
    return out


def _answer_spans(text: str, answers: list[str]) -> list[tuple[int, int, float]]:
    spans = []
    for answer in answers:
        answer = answer.strip()
        if answer and answer.lower() not in ("yes", "no"):
            spans += [(m.start(), m.end(), 1.0) for m in re.finditer(re.escape(answer), text)]
    return spans


def training_texts(hotpotqa: int, squad: int, gsm8k: int, seed: int) -> list[TrainingText]:
    rng = random.Random(seed)
    return hotpotqa_texts(hotpotqa, rng) + squad_texts(squad, rng) + gsm8k_texts(gsm8k, rng) + bbh_texts()
