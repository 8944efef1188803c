"""`make demo`: compress a real HotpotQA question's ten paragraphs with the best method installed.

Prints the compressed context, the token numbers and whether the answer survived.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ctxzip import Budget, available_methods, create_compressor
from eval.metrics import answer_recall

SAMPLE = Path(__file__).parent / "samples" / "hotpotqa_sample.json"
# Best first: the query-aware sentence selector with its embedded models, then the fallbacks.
PREFERENCE = ["extractive", "token", "truncate"]


def main(ratio: float = 0.33) -> None:
    sample = json.loads(SAMPLE.read_text(encoding="utf-8"))
    method = next(m for m in PREFERENCE if m in available_methods())
    compressor = create_compressor(method)
    result = compressor.compress(sample["documents"], query=sample["question"], budget=Budget(ratio=ratio))
    print(f"Question: {sample['question']}\nGold answer: {sample['answer']}\n")
    print("Compressed context:\n" + "-" * 60)
    print(result.text)
    print("-" * 60)
    print(f"method: {result.method}  model: {result.model}")
    print(f"tokens: {result.original_tokens} -> {result.compressed_tokens} (budget {result.budget_tokens}, "
          f"ratio {result.ratio:.3f}, {result.tokenizer})")
    print(f"documents kept: {len(result.documents)} of {len(sample['documents'])}; spans: {len(result.kept)}")
    print(f"answer survives: {bool(answer_recall(sample['answer'], result.text))}")
    print(f"time: {result.timings.get('total', 0):.2f} s")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.33)
