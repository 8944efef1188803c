"""LlamaIndex postprocessor inside a real query engine (VectorStoreIndex of HotpotQA paragraphs embedded by
MiniLM, MockLLM that echoes its prompt): the LLM gets a context within budget, nodes keep their metadata."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from ctxzip.budget import get_token_counter
from ctxzip.errors import BudgetTooSmallError, InvalidBudgetError
from eval.datasets import load_hotpotqa
from llama_index_ctxzip import CtxzipPostprocessor, MiniLMEmbedding

COUNTER = get_token_counter("cl100k_base")
METHODS = ["truncate", "random"] + (["extractive"] if importlib.util.find_spec("ctxzip.compressors.extractive") else [])
SEPARATOR = "---------------------\n"  # around the context in LlamaIndex's default QA prompt


@pytest.fixture(scope="module")
def examples():
    return load_hotpotqa("eval", limit=5)


@pytest.fixture(scope="module")
def index(examples):
    nodes = [TextNode(text=p.text, id_=f"{e.id}/{k}", metadata={"title": p.title, "question_id": e.id})
             for e in examples for k, p in enumerate(e.paragraphs)]
    return VectorStoreIndex(nodes, embed_model=MiniLMEmbedding())


def prompt_context(prompt: str) -> str:
    return prompt.split(SEPARATOR)[1].rstrip("\n")


@pytest.mark.parametrize("method", METHODS)
def test_query_engine_llm_receives_a_context_within_budget(index, examples, method):
    question = examples[0].question
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=6,
                                   node_postprocessors=[CtxzipPostprocessor(compressor=method, budget=250)])
    full = index.as_query_engine(llm=MockLLM(), similarity_top_k=6).query(question)
    response = engine.query(question)
    # MockLLM answers with the prompt it was given
    assert COUNTER.count(prompt_context(full.response)) > 400
    context = prompt_context(response.response)
    assert 0 < COUNTER.count(context) <= 250  # node texts and the metadata lines LlamaIndex adds
    originals = {n.node.node_id: n for n in full.source_nodes}
    assert response.source_nodes
    for scored in response.source_nodes:
        original = originals[scored.node.node_id]
        info = scored.node.metadata["ctxzip"]
        assert {k: v for k, v in scored.node.metadata.items() if k != "ctxzip"} == original.node.metadata
        assert scored.score == original.score
        text = original.node.get_content()
        assert "".join(text[s:e] for s, e in info["kept"]) == scored.node.get_content()
        assert info["compressed_tokens"] == COUNTER.count(scored.node.get_content())
        assert scored.node.get_content() in context and "ctxzip" not in context  # provenance not in the prompt
    assert sum(COUNTER.count(n.node.get_content()) for n in response.source_nodes) < 250


def test_async_query_and_edge_cases(index, examples):
    question = examples[1].question
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=4,
                                   node_postprocessors=[CtxzipPostprocessor(compressor="truncate", budget=80)])
    response = asyncio.run(engine.aquery(question))
    assert 0 < COUNTER.count(prompt_context(response.response)) <= 80

    post = CtxzipPostprocessor(compressor="truncate", budget=100)
    assert post.postprocess_nodes([], query_str="q") == []
    huge = "\n\n".join(p.text for e in examples for p in e.paragraphs) * 10
    assert COUNTER.count(huge) > 50_000
    [one] = post.postprocess_nodes([NodeWithScore(node=TextNode(text=huge, metadata={"src": "all"}), score=0.5)],
                                   QueryBundle("q"))
    assert COUNTER.count(one.node.get_content()) <= 100 and one.node.metadata["src"] == "all" and one.score == 0.5
    # nodes without chosen ids, and two nodes sharing an id, come back apart and in order
    nodes = [NodeWithScore(node=TextNode(text=p.text, metadata={"k": k})) for k, p in enumerate(examples[0].paragraphs[:3])]
    nodes += [NodeWithScore(node=TextNode(text="same id one", id_="x")), NodeWithScore(node=TextNode(text="same id two", id_="x"))]
    out = CtxzipPostprocessor(compressor="truncate", budget=1.0).postprocess_nodes(nodes, query_str="q")
    assert [n.node.get_content() for n in out] == [n.node.get_content() for n in nodes]
    assert [n.node.metadata.get("k") for n in out] == [0, 1, 2, None, None]
    with pytest.raises(InvalidBudgetError):
        CtxzipPostprocessor(compressor="truncate", budget=-3)


def test_budget_with_and_without_the_metadata_lines():
    nodes = [NodeWithScore(node=TextNode(text=" ".join(["word"] * 200), metadata={"source": f"long-source-name-{k}" * 4}))
             for k in range(3)]
    with pytest.raises(BudgetTooSmallError, match="leave no room"):
        CtxzipPostprocessor(compressor="truncate", budget=20).postprocess_nodes(nodes, query_str="q")
    text_only = CtxzipPostprocessor(compressor="truncate", budget=20, count_metadata=False)
    out = text_only.postprocess_nodes(nodes, query_str="q")
    assert COUNTER.count("\n\n".join(n.node.get_content() for n in out)) <= 20 < COUNTER.count(
        "\n\n".join(n.node.get_content(metadata_mode=MetadataMode.LLM) for n in out))
