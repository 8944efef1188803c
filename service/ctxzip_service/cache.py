"""An LRU of compression results keyed by a hash of the input and every option that changes it."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from ctxzip.document import CompressionResult


def cache_key(method: str, options: dict[str, Any], documents: list[dict], query: str | None, budget: dict) -> str:
    """A stable digest: same method, options, documents (text, id, metadata), query and budget → same key."""
    payload = json.dumps(
        [method, options, documents, query, budget], sort_keys=True, ensure_ascii=False, default=repr
    )
    # surrogatepass: a text with a lone surrogate still hashes; the compressor then refuses it clearly.
    return hashlib.blake2b(payload.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


class ResultCache:
    """Used from the event loop only, so it needs no lock."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, CompressionResult] = OrderedDict()

    def get(self, key: str) -> CompressionResult | None:
        result = self._items.get(key)
        if result is not None:
            self._items.move_to_end(key)
        return result

    def put(self, key: str, result: CompressionResult) -> None:
        if self.max_items <= 0:
            return
        self._items[key] = result
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
