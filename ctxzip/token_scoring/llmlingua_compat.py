"""The llmlingua package's LLMLingua-2 selection (v0.2.2), reproduced on the original text.

llmlingua chunks the token sequence at "." tokens into pieces of at most 510 tokens, merges
sub-tokens into words by the checkpoint's rule (WordPiece "##" continuations, or SentencePiece
"▁" word starts plus punctuation), averages token probabilities per word, and in each chunk keeps
the words above a percentile of the word probabilities repeated once per cl100k token of the word.
Here the same words are found on the token offsets, so the kept words are sliced from the
original text instead of re-joined from sub-tokens.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import regex

from ctxzip.budget import get_token_counter
from ctxzip.errors import InvalidInputError
from ctxzip.token_scoring.classifier import TokenClassifier, with_special_tokens
from ctxzip.token_scoring.windows import _last_in

LLMLINGUA_MAX_SEQ_LEN = 512
LLMLINGUA_BATCH_SIZE = 50
CHUNK_END_TOKENS = (".", "\n")
_DIGIT = regex.compile(r"\d")


@dataclass
class LLMLinguaWords:
    """Words of one text as llmlingua forms them, with their probabilities and keep labels."""

    starts: np.ndarray  # character span of each word in the original text
    ends: np.ndarray
    texts: list[str]  # the word as llmlingua prints it (sub-tokens joined)
    probs: np.ndarray
    chunk: np.ndarray  # which 512-token chunk each word came from

    def __len__(self) -> int:
        return len(self.starts)


def word_rule(tokenizer) -> str:
    """"wordpiece" (mBERT-like, "##" continuations) or "sentencepiece" (XLM-R-like, "▁" starts)."""
    model_kind = type(tokenizer.backend_tokenizer.model).__name__
    if model_kind == "WordPiece":
        return "wordpiece"
    if model_kind in ("Unigram", "BPE") and "▁" in "".join(tokenizer.convert_ids_to_tokens(list(range(min(len(tokenizer), 2000))))):
        return "sentencepiece"
    raise InvalidInputError(
        f"llmlingua_compatible needs a WordPiece (bert-base-multilingual-cased-like) or SentencePiece "
        f"(xlm-roberta-large-like) tokenizer, not {model_kind}"
    )


def chunk_bounds(tokens: np.ndarray, max_seq_len: int = LLMLINGUA_MAX_SEQ_LEN, end_tokens=CHUNK_END_TOKENS) -> list[tuple[int, int]]:
    """llmlingua's `__chunk_context`: cut after the last end token within 510 tokens (a chunk may reach 511)."""
    body = max_seq_len - 2
    ends = np.flatnonzero(np.isin(tokens, list(end_tokens)))
    n, start, bounds = len(tokens), 0, []
    while start < n:
        if start + body > n - 1:
            bounds.append((start, n))
            break
        end = _last_in(ends, start, start + body)
        end = start + body if end is None else end
        bounds.append((start, end + 1))
        start = end + 1
    return bounds


def llmlingua_words(
    classifier: TokenClassifier,
    text: str,
    force_tokens: tuple[str, ...] = (),
    force_reserve_digit: bool = False,
) -> LLMLinguaWords:
    """Words, word probabilities and chunks of `text` exactly as llmlingua 0.2.2 computes them.

    llmlingua turns each chunk back into a string and tokenises it again (with SentencePiece the
    chunk's first token gains a "▁"), so the model sees those ids; its words are then matched to
    the words found on the original offsets, chunk by chunk.
    """
    tokenizer = classifier.tokenizer
    rule = word_rule(tokenizer)
    encoded = classifier.encode(text)
    tokens = np.array(tokenizer.convert_ids_to_tokens(encoded.ids.tolist()), dtype=object).astype(str)
    empty = np.zeros(0, dtype=np.int64)
    if not len(tokens):
        return LLMLinguaWords(empty, empty, [], np.zeros(0, dtype=np.float32), empty)
    special = [v for k, v in tokenizer.special_tokens_map.items() if k != "additional_special_tokens" and isinstance(v, str)]
    bounds = chunk_bounds(tokens)

    chunk_tokens, sequences = [], []
    for start, end in bounds:
        retokenized = tokenizer.tokenize(tokenizer.convert_tokens_to_string(tokens[start:end].tolist()))
        chunk_tokens.append(np.array(retokenized, dtype=object).astype(str))
        ids = np.asarray(tokenizer.convert_tokens_to_ids(retokenized), dtype=np.int64)
        sequence, _ = with_special_tokens(tokenizer, ids)
        sequences.append(sequence[:LLMLINGUA_MAX_SEQ_LEN])
    probs = classifier.keep_probabilities(sequences, pad_to=LLMLINGUA_MAX_SEQ_LEN, max_batch_size=LLMLINGUA_BATCH_SIZE)

    starts, ends, texts, word_probs, chunks = [], [], [], [], []
    for chunk, ((start, end), retokenized, p) in enumerate(zip(bounds, chunk_tokens, probs)):
        seen = retokenized[: LLMLINGUA_MAX_SEQ_LEN - 1]  # what survives [CLS] + ... truncated to 512
        merged = merge_words(seen, p[1 : 1 + len(seen)].astype(np.float32), rule, special, force_tokens, force_reserve_digit)
        original = merge_words(tokens[start:end], np.zeros(end - start, dtype=np.float32), rule, special, force_tokens, False)
        first, last = original.first + start, original.last + start
        mapping = _align([_bare(t, rule) for t in merged.texts], [_bare(t, rule) for t in original.texts])
        starts.append(encoded.starts[first[mapping]])
        ends.append(encoded.ends[last[mapping]])
        texts.extend(merged.texts)
        word_probs.append(merged.probs)
        chunks.append(np.full(len(merged.texts), chunk))
    return LLMLinguaWords(
        np.concatenate(starts), np.concatenate(ends), texts, np.concatenate(word_probs), np.concatenate(chunks)
    )


@dataclass
class _Merged:
    first: np.ndarray  # index of each word's first and last token (among all tokens given)
    last: np.ndarray
    texts: list[str]
    probs: np.ndarray


def merge_words(tokens, token_probs, rule, special, force_tokens, force_reserve_digit) -> _Merged:
    """llmlingua's `__merge_token_to_word` + mean per word, with numpy string operations."""
    valid = ~np.isin(tokens, special)
    marker = "#" if rule == "wordpiece" else "▁"
    pure = np.char.lstrip(tokens, marker) if len(tokens) else tokens
    forced_pure = np.isin(pure, list(force_tokens)) if force_tokens else np.zeros(len(tokens), dtype=bool)
    if rule == "wordpiece":
        begins = ~np.char.startswith(tokens, "##") | forced_pure
    else:
        begins = np.char.startswith(tokens, "▁") | np.isin(tokens, list(string.punctuation))
        if force_tokens:
            begins |= np.isin(tokens, list(force_tokens))
    token_probs = np.asarray(token_probs, dtype=np.float32)
    if force_tokens:
        token_probs = np.where(begins & forced_pure, np.float32(1.0), token_probs)
    if force_reserve_digit:
        has_digit = np.fromiter((bool(_DIGIT.search(t)) for t in tokens), dtype=bool, count=len(tokens))
        token_probs = np.where(has_digit, np.float32(1.0), token_probs)
    keep = np.flatnonzero(valid)
    if not len(keep):
        empty = np.zeros(0, dtype=np.int64)
        return _Merged(empty, empty, [], np.zeros(0, dtype=np.float32))
    begins_kept = begins[keep]
    begins_kept[0] = True  # llmlingua would fail on a leading continuation; treat it as a word
    first = np.flatnonzero(begins_kept)
    counts = np.diff(np.append(first, len(keep)))
    # Float32 sums in token order, as llmlingua's sum() over numpy float32 values.
    probs = (np.add.reduceat(token_probs[keep], first) / counts.astype(np.float32)).astype(np.float32)
    display = np.where(begins[keep], tokens[keep], pure[keep])
    texts = ["".join(piece) for piece in np.split(display, first[1:])]
    last = np.append(first[1:], len(keep)) - 1
    return _Merged(keep[first], keep[last], texts, probs)


def _bare(word: str, rule: str) -> str:
    return word.lstrip("▁") if rule == "sentencepiece" else word


def _align(words: list[str], reference: list[str]) -> np.ndarray:
    """For each of `words`, the index of the matching `reference` word (same list up to re-tokenisation)."""
    if len(words) == len(reference):
        return np.arange(len(words))
    import difflib

    mapping = np.full(len(words), -1, dtype=np.int64)
    for block in difflib.SequenceMatcher(a=words, b=reference, autojunk=False).get_matching_blocks():
        mapping[block.a : block.a + block.size] = np.arange(block.b, block.b + block.size)
    # Unmatched words take the nearest matched reference word before them (or the first).
    filled = np.maximum.accumulate(np.where(mapping >= 0, mapping, -1))
    return np.clip(filled, 0, max(len(reference) - 1, 0))


def llmlingua_keep(words: LLMLinguaWords, reduce_rate: float) -> np.ndarray:
    """Per chunk, keep words above the `int(100 * reduce_rate + 1)` percentile of cl100k-token-weighted probabilities."""
    keep = np.zeros(len(words), dtype=bool)
    if not len(words):
        return keep
    if reduce_rate <= 0:
        keep[:] = True
        return keep
    weights = np.asarray(get_token_counter("cl100k_base").count_many(words.texts), dtype=np.int64)
    for chunk in np.unique(words.chunk).tolist():
        rows = np.flatnonzero(words.chunk == chunk)
        repeated = np.repeat(words.probs[rows], weights[rows])
        if not len(repeated):
            continue
        threshold = np.percentile(repeated, int(100 * reduce_rate + 1))
        probs = words.probs[rows]
        keep[rows] = (probs > threshold) | ((threshold == 1.0) & (probs == threshold))
    return keep
