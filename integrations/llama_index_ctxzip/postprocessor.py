"""`CtxzipPostprocessor`: a LlamaIndex node postprocessor backed by any ctxzip compressor.

All nodes of one query share the budget, which covers what the LLM will read: the nodes' text and
the metadata lines LlamaIndex prints above each (`count_metadata=False`: the text only). Unlike
LlamaIndex's LongLLMLingua postprocessor, which merges every node into one, each node keeps its own
id, score and metadata; it gains `metadata["ctxzip"]` (kept character spans of its original text,
token counts, method), hidden from the LLM and the embedder so it costs no prompt tokens.
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field, PrivateAttr

import ctxzip
from ctxzip.budget import Budget, as_budget
from ctxzip.chat import BudgetFit
from ctxzip.registry import resolve_compressor

METADATA_KEY = "ctxzip"
CONTEXT_SEPARATOR = "\n\n"  # how LlamaIndex's response synthesizers join node contents


def _llm_context(nodes) -> str:
    return CONTEXT_SEPARATOR.join(node.get_content(metadata_mode=MetadataMode.LLM) for node in nodes)


class CtxzipPostprocessor(BaseNodePostprocessor):
    """Compress retrieved nodes under one token budget, node by node.

    `compressor` is a method name ("extractive", "truncate", ...) or a ctxzip compressor instance;
    `budget` is a `ctxzip.Budget`, an int (tokens) or a float in (0, 1] (share of the input).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: Budget
    compressor: Any = "extractive"
    compressor_options: dict[str, Any] = Field(default_factory=dict)
    count_metadata: bool = True  # the budget covers the metadata lines LlamaIndex shows the LLM too
    _instance: Any = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic sees it, so a bad budget raises ctxzip's own error type.
        if "budget" in data:
            data["budget"] = as_budget(data["budget"])
        super().__init__(**data)

    @classmethod
    def class_name(cls) -> str:
        return "CtxzipPostprocessor"

    @property
    def ctxzip_compressor(self):
        """The ctxzip compressor, built on first use (a model-based one loads its model once)."""
        if self._instance is None:
            self._instance = resolve_compressor(self.compressor, self.compressor_options)
        return self._instance

    def _postprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        if not nodes:
            return []
        counter = self.budget.counter
        texts = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        # What the LLM reads: each node's text under the metadata LlamaIndex prints above it.
        shown = counter.count(_llm_context(n.node for n in nodes)) if self.count_metadata else None
        plain = counter.count(CONTEXT_SEPARATOR.join(texts))
        target = self.budget.resolve(shown if self.count_metadata else plain)
        # Only nodes that keep some text show their metadata, so the room left for text is found by
        # measuring: start from the whole budget and take off what the output went over.
        # Positional ids: results map back by position whatever the node ids are.
        documents = [ctxzip.Document(text, str(i)) for i, text in enumerate(texts)]
        query = query_bundle.query_str if query_bundle is not None else None
        what = "the nodes and the metadata LlamaIndex shows the LLM (count_metadata=False budgets the text only)"
        fit = BudgetFit(target, target, what=what)
        for room in fit:
            budget = Budget(tokens=room, tokenizer=self.budget.tokenizer)
            result = self.ctxzip_compressor.compress(documents, query=query, budget=budget)
            output = self._rebuild(nodes, texts, result, counter)
            used = counter.count(_llm_context(n.node for n in output) if self.count_metadata
                                 else CONTEXT_SEPARATOR.join(n.node.get_content(metadata_mode=MetadataMode.NONE) for n in output))
            if fit.accept(result.compressed_tokens, used):
                break
        return output

    def _rebuild(self, nodes, texts, result, counter) -> List[NodeWithScore]:
        """Copies of the nodes that kept some text, with their metadata and provenance."""
        compressed = {doc.id: doc.text for doc in result.documents}
        spans: dict[str, list[list[int]]] = {}
        for span in result.kept:
            spans.setdefault(span.doc_id, []).append([span.start, span.end])
        output = []
        for i, (scored, original_text) in enumerate(zip(nodes, texts)):
            text = compressed.get(str(i))
            if not text:
                continue  # nothing of this node survived
            node = scored.node.model_copy(deep=True)
            node.set_content(text)
            node.metadata[METADATA_KEY] = {
                "method": result.method, "kept": spans.get(str(i), []),
                "original_tokens": counter.count(original_text), "compressed_tokens": counter.count(text),
                "budget_tokens": result.budget_tokens,
            }
            for excluded in (node.excluded_llm_metadata_keys, node.excluded_embed_metadata_keys):
                if METADATA_KEY not in excluded:
                    excluded.append(METADATA_KEY)
            output.append(NodeWithScore(node=node, score=scored.score))
        return output

    async def _apostprocess_nodes(
        self, nodes: List[NodeWithScore], query_bundle: Optional[QueryBundle] = None
    ) -> List[NodeWithScore]:
        # Model forwards are CPU/GPU bound: run them in a thread so the event loop keeps serving.
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)
