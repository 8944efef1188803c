"""LangChain integration of ctxzip (needs only langchain-core).

- `CtxzipCompressor`: a document compressor for `ContextualCompressionRetriever` and LCEL chains.
- `CtxzipPromptCompressor`: a Runnable, `prompt | CtxzipPromptCompressor(budget=...) | llm`.
- `MiniLMEmbeddings`: embeddings from the MiniLM model ctxzip ships, for offline vector stores.
"""

from langchain_ctxzip.documents import CtxzipCompressor
from langchain_ctxzip.embeddings import MiniLMEmbeddings
from langchain_ctxzip.prompt import CtxzipPromptCompressor

__all__ = ["CtxzipCompressor", "CtxzipPromptCompressor", "MiniLMEmbeddings"]
