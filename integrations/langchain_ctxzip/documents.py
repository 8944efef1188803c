"""`CtxzipCompressor`: a LangChain document compressor backed by any ctxzip compressor.

The budget covers all documents passed in together (what the LLM will read). Each document that
keeps some text comes back as its own `Document` with its own id and metadata, plus
`metadata["ctxzip"]`: the kept character spans of its original text, its token counts and the method.
"""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.callbacks import Callbacks
from langchain_core.documents import Document
from langchain_core.documents.compressor import BaseDocumentCompressor
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field, PrivateAttr

import ctxzip
from ctxzip.budget import Budget

from langchain_ctxzip._budget import CompressorSpec

METADATA_KEY = "ctxzip"


class CtxzipCompressor(CompressorSpec, BaseDocumentCompressor):
    """Compress retrieved documents under one token budget, keeping each document's metadata.

    `compressor` is a method name ("extractive", "truncate", ...) or a ctxzip compressor instance;
    `budget` is a `ctxzip.Budget`, an int (tokens) or a float in (0, 1] (share of the input).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Any = "extractive"
    budget: Budget
    compressor_options: dict[str, Any] = Field(default_factory=dict)
    _instance: Any = PrivateAttr(default=None)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        # Positional ids: LangChain ids may be missing or repeated; results map back by position.
        inputs = [ctxzip.Document(doc.page_content, str(i)) for i, doc in enumerate(documents)]
        result = self.ctxzip_compressor.compress(inputs, query=query, budget=self.budget)
        return to_langchain_documents(documents, result, self.budget.counter)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        # Model forwards are CPU/GPU bound: run them in a thread so the event loop keeps serving.
        return await run_in_executor(None, self.compress_documents, documents, query, callbacks)

    def as_runnable(self, documents_key: str = "context", query_key: str = "question") -> Runnable:
        """A Runnable for LCEL chains: takes a dict holding documents and a query, returns the same
        dict with the documents compressed (`{"context": retriever, "question": ...} | this`)."""

        def compress(inputs: dict) -> dict:
            return {**inputs, documents_key: list(self.compress_documents(inputs[documents_key], inputs[query_key]))}

        async def acompress(inputs: dict) -> dict:
            docs = await self.acompress_documents(inputs[documents_key], inputs[query_key])
            return {**inputs, documents_key: list(docs)}

        return RunnableLambda(compress, afunc=acompress, name="CtxzipCompressor")


def to_langchain_documents(originals: Sequence[Document], result, counter) -> list[Document]:
    """The compressed documents, in input order, each with its metadata, id and provenance."""
    spans: dict[str, list[list[int]]] = {}
    for span in result.kept:
        spans.setdefault(span.doc_id, []).append([span.start, span.end])
    compressed = {doc.id: doc.text for doc in result.documents}
    output = []
    for i, original in enumerate(originals):
        text = compressed.get(str(i))
        if not text:
            continue  # nothing of this document survived
        info = {
            "method": result.method,
            "kept": spans.get(str(i), []),
            "original_tokens": counter.count(original.page_content),
            "compressed_tokens": counter.count(text),
            "budget_tokens": result.budget_tokens,
        }
        output.append(Document(page_content=text, id=original.id,
                               metadata={**original.metadata, METADATA_KEY: info}))
    return output
