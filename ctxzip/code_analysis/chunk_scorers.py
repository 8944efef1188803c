"""Scoring code chunks against the instruction.

`PerplexityDropScorer` is LongCodeZip's coarse score: how much the instruction's per-token negative
log-likelihood drops when a chunk precedes it, from a small causal LM (SmolLM2 by default), in
batched forwards padded to similar lengths. `SimilarityScorer` uses sentence embeddings (MiniLM),
`LexicalScorer` shared identifiers weighted by rarity; neither needs a causal LM.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np
import regex

from ctxzip.batching import batch_by_length
from ctxzip.errors import InvalidInputError
from ctxzip.progress import report


class ChunkScorer(Protocol):
    name: str
    forward_seconds: float  # time spent in model forwards, summed over calls

    def score(self, texts: list[str], query: str) -> np.ndarray: ...


class PerplexityDropScorer:
    """score(chunk) = NLL(instruction) - NLL(instruction | chunk), per instruction token, in nats."""

    name = "perplexity"

    def __init__(self, model: str = "smollm2", device: str = "auto", max_chunk_tokens: int = 512,
                 max_query_tokens: int = 256, batch_tokens: int = 8192) -> None:
        self.model_name = model
        self.device = device
        self.max_chunk_tokens = max_chunk_tokens
        self.max_query_tokens = max_query_tokens
        self.batch_tokens = batch_tokens
        self.forward_seconds = 0.0
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from ctxzip.models import load_causal_lm

            self._loaded = load_causal_lm(self.model_name, self.device)
        return self._loaded

    def score(self, texts: list[str], query: str) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        _, tokenizer = self._load()
        query_ids = tokenizer("\n" + query, add_special_tokens=False)["input_ids"][: self.max_query_tokens]
        if not query_ids:
            return np.zeros(len(texts))
        # The head of a long chunk carries its signature and docstring; the tail is cut for cost.
        chunk_ids = [ids[: self.max_chunk_tokens] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
        nll = self.query_nll([[]] + chunk_ids, query_ids)
        return nll[0] - nll[1:]

    def query_nll(self, contexts: list[list[int]], query_ids: list[int]) -> np.ndarray:
        """Mean NLL of `query_ids` after each context, batched by padded token count."""
        import torch

        model, tokenizer = self._load()
        start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start_id
        device = next(model.parameters()).device
        sequences = [[start_id] + ids + query_ids for ids in contexts]
        lengths = np.array([len(s) for s in sequences])
        q = len(query_ids)
        targets = torch.tensor(query_ids, device=device)
        result = np.zeros(len(sequences))
        batches = batch_by_length(lengths, self.batch_tokens, max_batch_size=len(sequences))
        for done, rows in enumerate(batches):
            report("language model", done, len(batches))
            width = int(lengths[rows[0]])  # longest first, so the first row sets the width
            ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            for r, index in enumerate(rows.tolist()):
                ids[r, : lengths[index]] = torch.tensor(sequences[index])
                attention[r, : lengths[index]] = 1
            # Hidden states at the positions that predict the query; the LM head runs on those only.
            predict_at = torch.as_tensor(lengths[rows] - q - 1)[:, None] + torch.arange(q)[None, :]
            began = time.perf_counter()
            with torch.inference_mode():
                hidden = model.base_model(input_ids=ids.to(device), attention_mask=attention.to(device),
                                          use_cache=False).last_hidden_state
                picked = hidden.gather(1, predict_at.to(device)[:, :, None].expand(-1, -1, hidden.shape[-1]))
                logits = model.get_output_embeddings()(picked).float()
                losses = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), targets.repeat(len(rows)), reduction="none"
                ).reshape(len(rows), q)
            self.forward_seconds += time.perf_counter() - began
            result[rows] = losses.mean(dim=1).cpu().numpy()
        return result


class SimilarityScorer:
    """Cosine similarity of sentence embeddings (MiniLM by default) between chunk and instruction."""

    name = "similarity"

    def __init__(self, model: str = "minilm", device: str = "auto", batch_size: int = 64) -> None:
        self.model_name = model
        self.device = device
        self.batch_size = batch_size
        self.forward_seconds = 0.0

    def score(self, texts: list[str], query: str) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        from ctxzip.models import load_sentence_encoder

        encoder = load_sentence_encoder(self.model_name, self.device)
        began = time.perf_counter()
        vectors = encoder.encode([query] + list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        self.forward_seconds += time.perf_counter() - began
        return vectors[1:] @ vectors[0]


_IDENTIFIER = regex.compile(r"[A-Za-z_][A-Za-z0-9_]*|\p{L}+")
_SUBWORD = regex.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+|\p{L}+")
_STOP = frozenset(
    "self cls def return if else elif for while in and or not is none true false the a an of to this that with "
    "from import as pass class function var let const new null void int str public private static".split()
)


def identifiers(text: str) -> list[str]:
    """Identifiers and their lower-cased sub-words (snake_case and camelCase parts), minus keywords."""
    words = []
    for name in _IDENTIFIER.findall(text):
        words.append(name)
        words.extend(part.lower() for part in _SUBWORD.findall(name) if len(part) > 2)
    return [w for w in words if w.lower() not in _STOP and len(w) > 1]


class LexicalScorer:
    """BM25 (bm25s) over identifiers and their sub-words: the instruction's names, weighted by rarity."""

    name = "lexical"
    forward_seconds = 0.0
    k1, b = 1.2, 0.75

    def score(self, texts: list[str], query: str) -> np.ndarray:
        import bm25s

        query_words = list(dict.fromkeys(identifiers(query)))
        bags = [identifiers(t) for t in texts]
        if not texts or not query_words or not any(bags):
            return np.zeros(len(texts))  # nothing to match (bm25s cannot index an empty vocabulary)
        index = bm25s.BM25(k1=self.k1, b=self.b)
        index.index(bags, show_progress=False)
        return np.asarray(index.get_scores(query_words), dtype=np.float64)


SCORERS = {"perplexity": PerplexityDropScorer, "similarity": SimilarityScorer, "lexical": LexicalScorer}


def make_scorer(name: str, model: str | None = None, device: str = "auto", **options) -> ChunkScorer:
    """A scorer by name; `model` overrides its default model (a name, local path or hub id)."""
    if name not in SCORERS:
        raise InvalidInputError(f"unknown code scorer {name!r}; choose one of {', '.join(SCORERS)}")
    if name == "lexical":
        return LexicalScorer()
    kwargs = {"device": device, **options}
    if model is not None:
        kwargs["model"] = model
    return SCORERS[name](**kwargs)
