"""LLMLingua-2-style compression: a bidirectional encoder labels each token keep/drop.

Sub-token keep probabilities are averaged per word (via the tokenizer's offsets) and one global
selection over all windows and documents goes through the shared solver, so the budget is met
exactly. `llmlingua_compatible=True` instead keeps the words the llmlingua package would keep.

With no model given it uses the embedded distilled model (ctxzip/lingua-minilm-v1), and its
question-aware sibling (ctxzip/lingua-minilm-qa-v1, input `query [SEP] context`) when a query is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ctxzip.compressors.base import Request, ScoringCompressor
from ctxzip.errors import InvalidInputError
from ctxzip.protect import Protection
from ctxzip.segment import SPLITTERS, sentence_spans, split_documents, word_spans
from ctxzip.select import Units, select_under_budget
from ctxzip.token_scoring.aggregate import token_units, unit_mean
from ctxzip.token_scoring.classifier import TokenClassifier, load_token_classifier, with_special_tokens
from ctxzip.token_scoring.windows import plan_windows

# Documents the coarse filter drops sink below every kept document's words (probabilities are in [0, 1]).
_FILTERED_PENALTY = 2.0
# With "auto", one document this long with a query is also cut at sentences first (a transcript, a report).
CASCADE_SINGLE_DOCUMENT_TOKENS = 2000
DEFAULT_MODEL = "ctxzip/lingua-minilm-v1"
DEFAULT_QUESTION_MODEL = "ctxzip/lingua-minilm-qa-v1"


@dataclass
class TokenClassifierCompressor(ScoringCompressor):
    """Keep the words a token classifier (label 1 = keep) rates highest, under the budget.

    model: local path, embedded alias or hub id of an AutoModelForTokenClassification checkpoint
        (e.g. microsoft/llmlingua-2-xlm-roberta-large-meetingbank where the hub is reachable);
        None = the embedded distilled model ctxzip/lingua-minilm-v1.
    question_model: the model used when compress() gets a query: "auto" = ctxzip/lingua-minilm-qa-v1
        when `model` is the default (else `model` itself), None = never switch, or a checkpoint.
        A question-aware model reads `[CLS] query [SEP] window [SEP]`; the query's tokens shorten
        each window (at most `max_query_tokens` of them are used).
    llmlingua_compatible: keep exactly the words llmlingua 0.2.2 keeps (per-512-token-chunk
        percentile, its word rules), sliced from the original text; trimmed only if over budget.
    force_tokens / keep_digits: strings and numbers always kept (protected spans).
    document_filter: share of documents to keep by mean keep probability before the word level.
    quantize: "int8" (CPU only), None, or "auto" (int8 on CPU unless llmlingua_compatible).
    backend: how int8 runs: "onnx" (ONNX Runtime, exported once), "torch" (dynamic quantization
        of the Linear layers), or "auto" (ONNX Runtime where installed: it loads in a fraction of
        a second and uses half the memory; torch int8 has the higher throughput on long inputs).
    batch_tokens: tokens per forward batch; None = tuned per backend (see `batch_size_for`).
    unit: what is kept or dropped whole: "entity" (words, with multi-word names, dates and numbers
        with their scale as one unit; see `ctxzip.segment.entity_spans`), "word" or "sentence".
    cascade: "auto" (with a query, and several documents or one longer than 2,000 tokens), True or
        False. A cascade keeps documents and sentences first (`ExtractiveCompressor(**sentence_options)`
        chooses sentences worth `budget / token_keep` tokens), then the token model reads only what
        was kept and its units compete for the budget. `info["cascade"]` says whether and how it ran.
    """

    model: str | None = None
    question_model: str | None = "auto"
    max_query_tokens: int = 64
    llmlingua_compatible: bool = False
    force_tokens: tuple[str, ...] = ()
    keep_digits: bool = False
    protection: Protection = Protection()
    document_filter: float | None = None
    quantize: str | None = "auto"
    backend: str = "auto"
    device: str = "auto"
    window_tokens: int | None = None
    batch_tokens: int | None = None
    unit: str = "entity"
    cascade: bool | str = "auto"
    token_keep: float = 0.8
    sentence_options: dict = field(default_factory=dict)
    allow_random_head: bool = False
    method = "token"
    _first_stage: object = field(default=None, init=False, repr=False, compare=False)
    _sentence_memo: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = DEFAULT_MODEL
        if self.question_model == "auto":
            self.question_model = DEFAULT_QUESTION_MODEL if self.model == DEFAULT_MODEL else None
        if self.max_query_tokens < 1:
            raise InvalidInputError(f"max_query_tokens must be at least 1, got {self.max_query_tokens}")
        if isinstance(self.force_tokens, str):
            self.force_tokens = (self.force_tokens,)
        self.force_tokens = tuple(self.force_tokens)
        if self.document_filter is not None and not (0.0 < float(self.document_filter) <= 1.0):
            raise InvalidInputError(f"document_filter must be in (0, 1], got {self.document_filter}")
        if self.window_tokens is not None and self.window_tokens < 8:
            raise InvalidInputError(f"window_tokens must be at least 8, got {self.window_tokens}")
        if self.unit not in ("word", "entity", "sentence"):
            raise InvalidInputError(f"unit must be 'word', 'entity' or 'sentence', got {self.unit!r}")
        if self.cascade not in ("auto", True, False):
            raise InvalidInputError(f"cascade must be 'auto', True or False, got {self.cascade!r}")
        if not 0.0 < self.token_keep <= 1.0:
            raise InvalidInputError(f"token_keep must be in (0, 1], got {self.token_keep}")
        if self.cascade is not False and not self.llmlingua_compatible:
            self.scores_depend_on_budget = True  # the sentence stage's share follows the budget
        self.model_name = str(self.model)
        extra = Protection(numbers=self.keep_digits, force_tokens=self.force_tokens)
        if extra.enabled:
            p = self.protection
            self.protection = Protection(
                numbers=p.numbers or extra.numbers, urls=p.urls, emails=p.emails, code=p.code,
                patterns=p.patterns, force_tokens=tuple(p.force_tokens) + extra.force_tokens,
            )

    @property
    def classifier(self) -> TokenClassifier:
        """The task-agnostic model (loaded once per process)."""
        return self._load(self.model)

    def classifier_for(self, query: str | None) -> TokenClassifier:
        """The question-aware model when there is a query and one is configured, else `classifier`."""
        if query and self.question_model and not self.llmlingua_compatible:
            return self._load(self.question_model)
        return self.classifier

    def classifier_name(self, query: str | None) -> str:
        if query and self.question_model and not self.llmlingua_compatible:
            return str(self.question_model)
        return str(self.model)

    def _load(self, name: str) -> TokenClassifier:
        from ctxzip.models import resolve_device

        device = resolve_device(self.device)
        quantize = self.quantize
        if quantize == "auto":
            quantize = "int8" if device == "cpu" and not self.llmlingua_compatible else None
        return load_token_classifier(name, device, quantize, self.allow_random_head, self.backend,
                                     full_tokenizer=self.llmlingua_compatible)

    def score_units(self, request: Request) -> Units:
        if self.llmlingua_compatible:
            return self._llmlingua_units(request)
        if self.cascades(request):
            return self._cascade_units(request)
        documents = request.documents
        doc, start, end = split_documents(documents, self.unit)
        score = self._model_scores(request.query, [d.text for d in documents], doc, start, end)
        if self.document_filter is not None and len(documents) > 1:
            score -= _FILTERED_PENALTY * ~kept_documents(doc, score, len(documents), self.document_filter)[doc]
        return Units.build(doc, start, end, score, info={"cascade": False, "unit": self.unit})

    def cascades(self, request: Request) -> bool:
        """Whether this request goes documents -> sentences -> tokens (see `cascade`)."""
        if self.cascade == "auto":
            several = len([d for d in request.documents if d.text.strip()]) > 1
            return bool(request.query) and (several or request.original_tokens > CASCADE_SINGLE_DOCUMENT_TOKENS)
        return bool(self.cascade)

    def _model_scores(self, query: str | None, texts: list[str], doc: np.ndarray, start: np.ndarray,
                      end: np.ndarray) -> np.ndarray:
        """Mean keep probability of each unit (doc, start, end) of `texts`, windows of all texts batched."""
        classifier = self.classifier_for(query)
        query_ids = None
        if query and classifier.question_aware:
            # at most a quarter of each window goes to the query
            query_ids = classifier.encode(query).ids[: min(self.max_query_tokens, self.window_size(classifier) // 4)]
        # Windows of every text go through the model together: many short documents
        # (retrieved passages) then fill whole batches instead of one small forward each.
        plans, sequences, offset = [], [], 0
        for index, text in enumerate(texts):
            rows = np.flatnonzero(doc == index)
            encoded = classifier.encode(text)
            if not len(rows) or not len(encoded):
                continue
            reserved = 0 if query_ids is None else len(query_ids) + 1  # the query and its [SEP]
            windows = self.plan_windows(classifier, text, encoded, reserved)
            plans.append((rows, encoded, windows, len(sequences)))
            for a, b in windows:
                sequence, offset = with_special_tokens(classifier.tokenizer, encoded.ids[a:b], query_ids)
                sequences.append(sequence)
        batch = self.batch_size_for(classifier)
        probs = classifier.keep_probabilities(sequences, max_batch_tokens=batch) if sequences else []
        score = np.zeros(len(doc), dtype=np.float64)
        for rows, encoded, windows, first in plans:
            window_probs = probs[first : first + len(windows)]
            token_probs = np.concatenate([p[offset : offset + (b - a)] for p, (a, b) in zip(window_probs, windows)])
            unit_of_token = token_units(encoded.starts, start[rows], end[rows])
            score[rows] = unit_mean(token_probs, unit_of_token, len(rows))
        return score

    def _sentence_stage(self):
        if self._first_stage is None:
            from ctxzip.compressors.extractive import ExtractiveCompressor

            self._first_stage = ExtractiveCompressor(**self.sentence_options)
        return self._first_stage

    def _sentence_units(self, request: Request) -> Units:
        """The sentence stage's scores, remembered for the last input (budget curves score it once)."""
        key = (tuple((d.id, d.text) for d in request.documents), request.query)
        memo = self._sentence_memo  # one read: another thread may replace it meanwhile
        if memo is None or memo[0] != key:
            memo = (key, self._sentence_stage().score_units(request))
            self._sentence_memo = memo
        units = memo[1]
        return Units(units.doc, units.start, units.end, units.score, units.protected.copy(), units.selectable,
                     units.group, units.parent, units.placeholders, dict(units.info))

    def score_many(self, requests: list[Request]) -> list[Units]:
        """The cascade's sentence stage scores all requests together (its encoder forwards are batched)."""
        flags = [not self.llmlingua_compatible and self.cascades(r) for r in requests]
        if sum(flags) < 2:
            return super().score_many(requests)
        sentences = iter(self._sentence_stage().score_many([r for r, f in zip(requests, flags) if f]))
        return [self._cascade_units(r, next(sentences)) if f else self.score_units(r) for r, f in zip(requests, flags)]

    def _cascade_units(self, request: Request, sentences: Units | None = None) -> Units:
        """Sentences first (the extractive stage keeps target / token_keep tokens), then the token model
        reads only what was kept and its units compete for the target. Text outside the kept
        sentences becomes word units that may not be chosen (kept only where protected)."""
        documents = request.documents
        stage = self._sentence_stage()
        room = min(request.original_tokens, max(request.target, math.floor(request.target / self.token_keep)))
        sentences = self._sentence_units(request) if sentences is None else sentences
        chosen = select_under_budget(documents, sentences, room, request.counter, stage.selection(request))
        kept = [[] for _ in documents]
        for i in np.flatnonzero(chosen.mask).tolist():
            d, a, b = int(sentences.doc[i]), int(sentences.start[i]), int(sentences.end[i])
            if kept[d] and kept[d][-1][1] == a:
                kept[d][-1] = (kept[d][-1][0], b)
            else:
                kept[d].append((a, b))
        docs, starts, ends, inside, views, view_start = [], [], [], [], [""] * len(documents), []
        splitter = SPLITTERS[self.unit]
        for d, document in enumerate(documents):
            text, position, view = document.text, 0, []
            for a, b in kept[d] + [(len(text), len(text))]:
                for (lo, hi), is_kept in (((position, a), False), ((a, b), True)):
                    if hi <= lo:
                        continue
                    s, e = (splitter if is_kept else word_spans)(text[lo:hi])
                    docs.append(np.full(len(s), d))
                    starts.append(s + lo)
                    ends.append(e + lo)
                    inside.append(np.full(len(s), is_kept))
                    shift = sum(len(v) for v in view) - lo  # original offset -> offset in the kept text
                    view_start.append(s + lo + shift if is_kept else np.full(len(s), -1))
                    if is_kept:
                        view.append(text[lo:hi])
                position = max(position, b)
            views[d] = "".join(view)
        doc, start, end = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (docs, starts, ends))
        inside = np.concatenate(inside) if inside else np.zeros(0, bool)
        vstart = np.concatenate(view_start) if view_start else np.zeros(0, np.int64)
        score = np.full(len(doc), -1.0)
        rows = np.flatnonzero(inside)
        if len(rows):
            score[rows] = self._model_scores(request.query, views, doc[rows], vstart[rows],
                                             vstart[rows] + (end[rows] - start[rows]))
        info = {"cascade": {"stages": ["sentences: " + (stage.model_name or stage.method), "tokens: " + str(self.classifier_name(request.query))],
                            "sentence_budget_tokens": int(room), "sentences_kept": int(chosen.mask.sum()),
                            "documents_with_sentences_kept": int(sum(bool(k) for k in kept)),
                            "token_keep": self.token_keep},
                "unit": self.unit}
        return Units.build(doc, start, end, score, selectable=inside, info=info)

    def window_size(self, classifier: TokenClassifier) -> int:
        """Tokens per model window, special tokens included: `window_tokens` capped by the model."""
        return min(self.window_tokens or classifier.max_length, classifier.max_length)

    def batch_size_for(self, classifier: TokenClassifier) -> int:
        """Tokens per forward batch. Small batches stay in the CPU caches: on 2 cores, 512 (ONNX
        Runtime) and 1024 (torch int8) were the fastest of 512-16384 at 32k tokens."""
        if self.batch_tokens is not None:
            return self.batch_tokens
        if classifier.device != "cpu":
            return 8192
        return 512 if classifier.backend == "onnx" else 1024

    def plan_windows(self, classifier: TokenClassifier, text: str, encoded, reserved: int = 0) -> list[tuple[int, int]]:
        """Token windows of one document that end at sentence ends (else at word starts).

        `reserved` tokens of each window go to the query and its separator."""
        window = self.window_size(classifier) - reserved
        _, sentence_ends = sentence_spans(text)
        sentence_cuts = np.searchsorted(encoded.starts, sentence_ends, side="left")
        word_cuts = np.flatnonzero(encoded.starts[1:] > encoded.ends[:-1]) + 1  # a gap before the token
        return plan_windows(len(encoded), window - 2, sentence_cuts, word_cuts)

    def _llmlingua_units(self, request: Request) -> Units:
        """Only the words llmlingua keeps become units, so the solver returns exactly them when they fit."""
        from ctxzip.token_scoring.llmlingua_compat import llmlingua_keep, llmlingua_words

        # llmlingua turns a token target into a rate over the sum of per-document counts.
        documents = request.documents
        original = sum(request.counter.count_many([d.text for d in documents]))
        reduce_rate = max(0.0, 1.0 - (min(request.target / original, 1.0) if original else 1.0))
        classifier = self.classifier
        docs, starts, ends, scores = [], [], [], []
        for index, document in enumerate(documents):
            words = llmlingua_words(classifier, document.text, self.force_tokens, self.keep_digits)
            if not len(words):
                continue
            keep = llmlingua_keep(words, reduce_rate)
            # Each word owns the text between the previous word and itself (spaces, skipped [UNK]s).
            unit_starts = np.concatenate([[0], words.ends[:-1]])
            unit_ends = words.ends.copy()
            unit_ends[-1] = len(document.text)
            docs.append(np.full(int(keep.sum()), index))
            starts.append(unit_starts[keep])
            ends.append(unit_ends[keep])
            scores.append(words.probs[keep].astype(np.float64))
        if not docs:
            return Units.empty()
        return Units.build(np.concatenate(docs), np.concatenate(starts), np.concatenate(ends), np.concatenate(scores))


def kept_documents(unit_doc: np.ndarray, score: np.ndarray, n_documents: int, share: float) -> np.ndarray:
    """Which documents survive the coarse filter: the top `share` by mean unit keep probability."""
    sums = np.bincount(unit_doc, weights=score, minlength=n_documents)
    counts = np.bincount(unit_doc, minlength=n_documents)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)
    n_keep = max(1, int(np.ceil(share * n_documents)))
    keep = np.zeros(n_documents, dtype=bool)
    keep[np.argsort(-means, kind="stable")[:n_keep]] = True
    return keep
