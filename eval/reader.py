"""A small reader for quality metrics: how likely is the gold answer given a (compressed) context.

Mean negative log-likelihood per answer token under SmolLM2-135M-Instruct, with the prompt
"<context>\n\nQuestion: <q>\nAnswer:" and the answer after it. Contexts that do not fit are cut
from the left (the question and answer always fit).
"""

from __future__ import annotations

import numpy as np


class AnswerScorer:
    def __init__(self, model: str = "smollm2", max_tokens: int = 2048, device: str = "auto") -> None:
        from ctxzip.models import load_causal_lm

        self.model, self.tokenizer = load_causal_lm(model, device)
        self.max_tokens = max_tokens
        self.device = next(self.model.parameters()).device

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def nll(self, context: str, question: str, answer: str) -> float:
        """Mean NLL (nats) of the answer tokens; an empty context means the question alone."""
        import torch

        head = f"{context}\n\nQuestion: {question}\nAnswer:" if context.strip() else f"Question: {question}\nAnswer:"
        prompt, target = self._ids(head), self._ids(" " + answer.strip())
        target = target[: self.max_tokens // 4]
        room = self.max_tokens - len(target)
        prompt = prompt[-room:]
        ids = torch.tensor([prompt + target], device=self.device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()
        losses = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt) :], reduction="none")
        return float(losses.mean())


def normalised_gain(none: np.ndarray, full: np.ndarray, compressed: np.ndarray) -> float:
    """(NLL_none - NLL_compressed) / (NLL_none - NLL_full) over the means: 1 = as good as the full context."""
    denominator = float(np.mean(none) - np.mean(full))
    return float((np.mean(none) - np.mean(compressed)) / denominator) if denominator else float("nan")


def bootstrap_gain(none, full, compressed, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    none, full, compressed = map(np.asarray, (none, full, compressed))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(none), size=(resamples, len(none)))
    gains = [normalised_gain(none[d], full[d], compressed[d]) for d in draws]
    low, high = np.nanquantile(gains, [0.025, 0.975])
    return normalised_gain(none, full, compressed), float(low), float(high)
