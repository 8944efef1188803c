"""LangChain integration with the real classes: an InMemoryVectorStore of HotpotQA paragraphs embedded by
MiniLM, ContextualCompressionRetriever (langchain-classic), LCEL chains ending in a fake chat model."""

from __future__ import annotations

import asyncio
import importlib.util
import time
from dataclasses import dataclass

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

from ctxzip.budget import get_token_counter
from ctxzip.compressors.truncate import TruncateCompressor
from eval.datasets import load_hotpotqa
from langchain_ctxzip import CtxzipCompressor, CtxzipPromptCompressor, MiniLMEmbeddings

COUNTER = get_token_counter("cl100k_base")
METHODS = ["truncate", "random"] + (["extractive"] if importlib.util.find_spec("ctxzip.compressors.extractive") else [])


@pytest.fixture(scope="module")
def examples():
    return load_hotpotqa("eval", limit=6)


@pytest.fixture(scope="module")
def store(examples):
    store = InMemoryVectorStore(MiniLMEmbeddings())
    docs = [Document(p.text, id=f"{e.id}/{k}", metadata={"title": p.title, "question_id": e.id})
            for e in examples for k, p in enumerate(e.paragraphs)]
    store.add_documents(docs)
    return store


def format_docs(docs) -> str:
    return "\n\n".join(d.page_content for d in docs)


def assert_traceable(compressed, originals):
    """Each compressed document keeps its id and metadata, and its spans rebuild its text."""
    by_id = {d.id: d for d in originals}
    for doc in compressed:
        original = by_id[doc.id]
        info = doc.metadata["ctxzip"]
        assert {k: v for k, v in doc.metadata.items() if k != "ctxzip"} == original.metadata
        assert "".join(original.page_content[s:e] for s, e in info["kept"]) == doc.page_content
        assert info["compressed_tokens"] == COUNTER.count(doc.page_content)
        assert info["original_tokens"] == COUNTER.count(original.page_content)


@pytest.mark.parametrize("method", METHODS)
def test_contextual_compression_retriever_returns_documents_within_budget(store, examples, method):
    retriever = store.as_retriever(search_kwargs={"k": 6})
    compressing = ContextualCompressionRetriever(
        base_compressor=CtxzipCompressor(compressor=method, budget=150), base_retriever=retriever
    )
    question = examples[0].question
    retrieved = retriever.invoke(question)
    assert COUNTER.count(format_docs(retrieved)) > 300  # so the budget has work to do
    compressed = compressing.invoke(question)
    assert compressed and COUNTER.count(format_docs(compressed)) <= 150
    assert_traceable(compressed, retrieved)
    assert all(d.metadata["ctxzip"]["method"] == method for d in compressed)


def test_async_retrieval_matches_sync_and_leaves_the_event_loop_free(store, examples):
    @dataclass
    class SlowTruncate(TruncateCompressor):
        def compress(self, inputs, query=None, budget=None):
            time.sleep(0.5)
            return super().compress(inputs, query=query, budget=budget)

    compressor = CtxzipCompressor(compressor=SlowTruncate(), budget=100)
    retriever = ContextualCompressionRetriever(base_compressor=compressor,
                                               base_retriever=store.as_retriever(search_kwargs={"k": 4}))
    question = examples[1].question

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        task = asyncio.create_task(ticker())
        docs = await retriever.ainvoke(question)
        task.cancel()
        return docs, ticks

    docs, ticks = asyncio.run(main())
    assert ticks >= 10  # the loop kept running during the 0.5 s compression
    assert [(d.id, d.page_content) for d in docs] == [(d.id, d.page_content) for d in retriever.invoke(question)]


class PromptRecorder(BaseCallbackHandler):
    """Records the messages a chat model is called with."""

    def __init__(self):
        self.calls = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.calls.extend(messages)


def test_lcel_chain_prompt_compressor_delivers_a_prompt_within_budget(store, examples):
    retriever = store.as_retriever(search_kwargs={"k": 8})
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer the question from the context only."), ("human", "{context}"), ("human", "{question}")]
    )
    recorder = PromptRecorder()
    llm = FakeListChatModel(responses=["Chief of Protocol"], callbacks=[recorder])
    compressor = CtxzipPromptCompressor(compressor="truncate", budget=250, min_tokens=50)
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | compressor | llm
    question = examples[0].question

    answer = chain.invoke(question)

    assert answer.content == "Chief of Protocol"
    [messages] = recorder.calls
    assert sum(COUNTER.count(m.content) for m in messages) <= 250
    assert messages[0].content == "Answer the question from the context only."
    assert messages[2].content == question
    context = format_docs(retriever.invoke(question))
    kept = messages[1].response_metadata["ctxzip"]["kept"]
    assert COUNTER.count(context) > 250 and kept[0][0] == 0
    assert "".join(context[s:e] for s, e in kept) == messages[1].content


def test_lcel_chain_with_the_document_compressor_as_a_step(store, examples):
    retriever = store.as_retriever(search_kwargs={"k": 6})
    prompt = ChatPromptTemplate.from_messages([("human", "Context:\n{context}\n\nQuestion: {question}")])
    recorder = PromptRecorder()
    llm = FakeListChatModel(responses=["ok"], callbacks=[recorder])
    step = CtxzipCompressor(compressor="random", budget=120).as_runnable()
    chain = ({"context": retriever, "question": RunnablePassthrough()} | step
             | RunnableLambda(lambda x: {"context": format_docs(x["context"]), "question": x["question"]})
             | prompt | llm)
    question = examples[2].question

    assert chain.invoke(question).content == "ok"
    sent = recorder.calls[0][0].content
    context = sent.split("Context:\n", 1)[1].rsplit("\n\nQuestion: ", 1)[0]
    assert 0 < COUNTER.count(context) <= 120
    assert asyncio.run(chain.ainvoke(question)).content == "ok"


def test_empty_retrieval_huge_document_and_documents_without_ids(examples):
    compressor = CtxzipCompressor(compressor="truncate", budget=200)
    assert compressor.compress_documents([], "anything") == []
    assert asyncio.run(compressor.acompress_documents([], "anything")) == []

    huge_text = "\n\n".join(p.text for e in examples for p in e.paragraphs) * 8
    assert COUNTER.count(huge_text) > 50_000
    [huge] = compressor.compress_documents([Document(huge_text, metadata={"source": "all"})], "q")
    assert COUNTER.count(huge.page_content) <= 200 and huge.metadata["source"] == "all" and huge.id is None
    assert "".join(huge_text[s:e] for s, e in huge.metadata["ctxzip"]["kept"]) == huge.page_content
    assert huge.metadata["ctxzip"]["kept"][0][0] == 0  # truncation keeps the head

    # no ids at all, and two documents sharing one id: both come back, told apart by position
    docs = [Document(p.text, metadata={"k": k}) for k, p in enumerate(examples[0].paragraphs[:3])]
    docs.append(Document(examples[0].paragraphs[3].text, id="same", metadata={"k": 3}))
    docs.append(Document(examples[0].paragraphs[4].text, id="same", metadata={"k": 4}))
    out = CtxzipCompressor(compressor="truncate", budget=1.0).compress_documents(docs, "q")
    assert [(d.id, d.metadata["k"], d.page_content) for d in out] == [(d.id, d.metadata["k"], d.page_content) for d in docs]


def test_bad_budget_fails_at_construction():
    from ctxzip.errors import InvalidBudgetError

    with pytest.raises(InvalidBudgetError):
        CtxzipCompressor(compressor="truncate", budget=0)
    with pytest.raises(InvalidBudgetError):
        CtxzipPromptCompressor(compressor="truncate", budget=1.5)
