"""`MiniLMEmbeddings`: LangChain embeddings from the MiniLM model that ships with ctxzip (offline)."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (or any sentence-transformers model `ctxzip.models` can load), normalised."""

    def __init__(self, model: str = "minilm", device: str = "auto", batch_size: int = 64) -> None:
        from ctxzip.models import load_sentence_encoder

        self.encoder = load_sentence_encoder(model, device)
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors = self.encoder.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True)
        return vectors.tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]
