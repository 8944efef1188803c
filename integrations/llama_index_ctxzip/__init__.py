"""LlamaIndex integration of ctxzip (needs only llama-index-core).

- `CtxzipPostprocessor`: a node postprocessor compressing each node under one budget, metadata kept.
- `MiniLMEmbedding`: embeddings from the MiniLM model ctxzip ships, for offline indexes.
"""

from llama_index_ctxzip.embeddings import MiniLMEmbedding
from llama_index_ctxzip.postprocessor import CtxzipPostprocessor

__all__ = ["CtxzipPostprocessor", "MiniLMEmbedding"]
