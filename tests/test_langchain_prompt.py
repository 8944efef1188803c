"""The prompt compressor's role policy: what it may compress, what it never touches, and the budget."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue, StringPromptValue

from ctxzip.budget import get_token_counter
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from langchain_ctxzip import CtxzipPromptCompressor

COUNTER = get_token_counter("cl100k_base")
LONG = " ".join(f"Sentence {i} says something about topic {i % 7}." for i in range(60))  # ~600 tokens


def total(messages) -> int:
    return sum(COUNTER.count(m.content if isinstance(m.content, str) else "".join(
        p if isinstance(p, str) else p.get("text", "") for p in m.content)) for m in messages)


def compress(messages, **options):
    options.setdefault("compressor", "random")  # spreads the cut over every compressible part
    options.setdefault("min_tokens", 100)
    return CtxzipPromptCompressor(**options).invoke(messages)


def test_system_prompt_and_final_question_stay_long_user_and_tool_contents_shrink():
    messages = [SystemMessage(LONG), HumanMessage(LONG), AIMessage("noted"), ToolMessage(LONG, tool_call_id="t1"),
                HumanMessage("What is topic 3 about? " + LONG)]
    budget = total(messages) - 500
    out = compress(messages, budget=budget)
    assert total(out) <= budget
    assert out[0].content == LONG and out[2].content == "noted" and out[4].content == messages[4].content
    # A user message that ended its turn (no question of its own to split off) was the question then:
    # it is never rewritten later, so each turn's prompt stays the prefix of the next (prompt caches).
    assert out[1].content == LONG
    assert len(out[3].content) < len(LONG)
    assert out[3].tool_call_id == "t1" and isinstance(out[3], ToolMessage)
    info = out[3].response_metadata["ctxzip"]
    assert "".join(LONG[s:e] for s, e in info["kept"]) == out[3].content
    assert info["compressed_tokens"] == COUNTER.count(out[3].content) and info["original_tokens"] == COUNTER.count(LONG)


def test_a_user_message_with_context_and_question_has_only_its_context_compressed():
    prompt = f"Context:\n{LONG}\n\nQuestion: What is topic 3 about?"
    out = compress([SystemMessage("Be brief."), HumanMessage(prompt)], budget=120)
    assert total(out) <= 120
    assert out[1].content.startswith("Context:\n") and out[1].content.endswith("\n\nQuestion: What is topic 3 about?")
    info = out[1].response_metadata["ctxzip"]
    assert "".join(prompt[s:e] for s, e in info["kept"]) == out[1].content


def test_short_contents_and_prompts_under_budget_pass_unchanged():
    messages = [SystemMessage("Be brief."), HumanMessage("short context"), HumanMessage("question?")]
    assert compress(messages, budget=1000) == messages
    long_prompt = [HumanMessage(LONG), HumanMessage("question?")]
    assert compress(long_prompt, budget=10_000) == long_prompt
    assert compress(long_prompt, budget=10_000, min_tokens=10_000) == long_prompt


def test_marks_compress_retrieved_context_anywhere_and_protect_what_they_mark():
    messages = [
        SystemMessage(LONG, additional_kwargs={"ctxzip_compress": True}),  # context placed in the system prompt
        HumanMessage(LONG, additional_kwargs={"ctxzip_compress": False}),  # a long user message kept whole
        HumanMessage([{"type": "text", "text": LONG, "ctxzip_compress": True}, {"type": "text", "text": "Why?"}]),
    ]
    budget = total(messages) - 400
    out = compress(messages, budget=budget)
    assert total(out) <= budget
    assert len(out[0].content) < len(LONG) and out[1].content == LONG
    assert len(out[2].content[0]["text"]) < len(LONG) and out[2].content[1] == {"type": "text", "text": "Why?"}
    # marks never reach the model
    assert "ctxzip_compress" not in out[0].additional_kwargs and "ctxzip_compress" not in out[1].additional_kwargs
    assert all("ctxzip_compress" not in part for part in out[2].content)


def test_input_kinds_round_trip_and_bad_input_is_refused():
    messages = [HumanMessage(LONG), HumanMessage("q?")]
    value = compress(ChatPromptValue(messages=messages), budget=100)
    assert isinstance(value, ChatPromptValue) and total(value.messages) <= 100
    assert isinstance(compress(messages, budget=100), list)
    text = compress(StringPromptValue(text=LONG), budget=1000, compress_last_user=True)
    assert isinstance(text, ChatPromptValue) and total(text.messages) <= 1000
    with pytest.raises(InvalidInputError, match="ChatPromptValue"):
        compress("just a string", budget=100)


def test_a_budget_smaller_than_the_untouchable_parts_raises():
    messages = [SystemMessage(LONG), HumanMessage(LONG), HumanMessage("q?")]
    with pytest.raises(BudgetTooSmallError, match="must stay as they are"):
        compress(messages, budget=COUNTER.count(LONG) - 10)


def test_ratio_budget_shrinks_the_compressible_parts():
    messages = [SystemMessage("Answer."), HumanMessage(LONG), HumanMessage(LONG), HumanMessage("q?")]
    out = compress(messages, budget=0.5)
    fixed = COUNTER.count("Answer.") + COUNTER.count("q?")
    assert total(out) <= fixed + int(0.5 * (total(messages) - fixed))
    assert out[0].content == "Answer." and out[-1].content == "q?"


def test_async_invoke_gives_the_same_prompt():
    import asyncio

    messages = [SystemMessage("Answer."), HumanMessage(LONG), HumanMessage("q?")]
    runnable = CtxzipPromptCompressor(compressor="random", budget=200, min_tokens=100)
    assert asyncio.run(runnable.ainvoke(messages)) == runnable.invoke(messages)
