"""`MiniLMEmbedding`: LlamaIndex embeddings from the MiniLM model that ships with ctxzip (offline)."""

from __future__ import annotations

from typing import Any, List

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr


class MiniLMEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 (or any sentence-transformers model `ctxzip.models` can load), normalised."""

    model: str = "minilm"
    device: str = "auto"
    _encoder: Any = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMEmbedding"

    def _encode(self, texts: List[str]) -> List[List[float]]:
        if self._encoder is None:
            from ctxzip.models import load_sentence_encoder

            self._encoder = load_sentence_encoder(self.model, self.device)
        return self._encoder.encode(list(texts), batch_size=self.embed_batch_size, normalize_embeddings=True).tolist()

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._encode([query])[0]

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._encode([text])[0]

    def _get_text_embeddings(self, texts: List[str]) -> List[List[float]]:
        return self._encode(texts)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._get_query_embedding(query)
