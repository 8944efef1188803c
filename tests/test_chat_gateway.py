"""The chat policy on gateway traffic: unmarked prompts, JSON tool results, per-tool policy, agent
histories under one budget, and outputs that depend only on the conversation before them."""

from __future__ import annotations

import json

import pytest

from ctxzip.budget import Budget, get_token_counter
from ctxzip.chat import ChatPolicy, TextPart, allocate_rooms, content_kind, plan_chat, segment_jobs, without_surrogates
from ctxzip.errors import InvalidInputError
from ctxzip.registry import create_compressor
from ctxzip.structured.json_check import elision_problems

COUNTER = get_token_counter("cl100k_base")
PASSAGES = "\n\n".join(
    f"[{n}] Page {n}\nThe river number {n} flows through the valley of {n * 7} towns. It was surveyed in {1800 + n}."
    for n in range(1, 40)
)
QUESTION = "Which river was surveyed in 1817?"
RAG = f"Answer using the context.\n\nContext:\n{PASSAGES}\n\nQuestion: {QUESTION}\nAnswer:"
HITS = json.dumps({"hits": [{"rank": i, "title": f"Page {i}", "snippet": f"The river number {i} was surveyed in {1800 + i}."}
                            for i in range(60)], "total": 60})


def parts(*messages):
    out = []
    for i, (role, text, *rest) in enumerate(messages):
        out.append(TextPart(i, None, role, text, tool=rest[0] if rest else None))
    return out


def compress_jobs(plan, budget, policy, method="truncate"):
    outputs = {}
    for job in segment_jobs(plan, budget, method, policy):
        compressor = create_compressor(job.method)
        result = compressor.compress([{"text": job.text, "id": job.key}], query=job.query, budget=job.budget)
        outputs[job.key] = job.output(result)
    return plan.part_texts(outputs)


def test_an_unmarked_rag_message_is_split_and_only_its_context_is_compressed():
    policy = ChatPolicy()
    plan = plan_chat(parts(("system", "Be brief."), ("user", RAG)), policy, COUNTER)
    assert plan.splits == {"1": "question_marker"}
    assert [s.kind for s in plan.segments] == ["context"]
    assert plan.query == QUESTION and plan.segments[0].query == QUESTION
    new = compress_jobs(plan, Budget(ratio=0.3), policy)["1"]
    assert new.startswith("Answer using the context.\n\nContext:\n")
    assert new.endswith(f"\n\nQuestion: {QUESTION}\nAnswer:")
    assert COUNTER.count(new) < 0.5 * COUNTER.count(RAG)


def test_an_unsure_split_leaves_the_message_alone_and_says_why():
    plan = plan_chat(parts(("user", PASSAGES + "\n\nThe end.")), ChatPolicy(), COUNTER)
    assert not plan.segments
    assert plan.splits["0"].startswith("unsure: ")


def test_json_tool_results_go_to_the_structured_method_and_stay_valid_json():
    policy = ChatPolicy(min_tokens=10)
    plan = plan_chat(parts(("user", "Which page was surveyed in 1817?"), ("assistant", "calling search"),
                           ("tool", HITS, "search")), policy, COUNTER)
    [segment] = plan.segments
    assert segment.kind == "json" and segment.query == "Which page was surveyed in 1817?"
    [job] = segment_jobs(plan, Budget(ratio=0.3), "extractive", policy)
    assert job.method == "json"
    new = compress_jobs(plan, Budget(ratio=0.3), policy)["2"]
    assert elision_problems(HITS, new) == []
    assert '"title": "Page 17"' in new


def test_tools_named_never_are_left_alone():
    policy = ChatPolicy(min_tokens=10, tools={"read_file": "never"})
    plan = plan_chat(parts(("user", "go"), ("tool", HITS, "read_file"), ("tool", HITS, "search")), policy, COUNTER)
    assert [s.part.tool for s in plan.segments] == ["search"]
    with pytest.raises(InvalidInputError):
        ChatPolicy(tools={"x": "sometimes"})


def test_a_segment_depends_only_on_the_conversation_before_it():
    """What turn N sent is what turn N+1 sends: same segment, same question before it, same budget."""
    policy = ChatPolicy(min_tokens=10)
    turn = [("user", "Which page was surveyed in 1817?"), ("assistant", "searching"), ("tool", HITS, "search")]
    first = compress_jobs(plan_chat(parts(*turn), policy, COUNTER), Budget(ratio=0.4), policy)
    later = turn + [("assistant", "found it"), ("user", "And which one in 1830?"), ("assistant", "again"),
                    ("tool", HITS.replace("60", "61"), "search")]
    second = compress_jobs(plan_chat(parts(*later), policy, COUNTER), Budget(ratio=0.4), policy)
    assert second["2"] == first["2"]
    assert "6" in second  # the new tool result is compressed too, for the new question


def test_under_a_token_budget_older_segments_give_way_first_and_recent_turns_stay():
    policy = ChatPolicy(min_tokens=10, keep_last_turns=1)
    messages = [("user", "Find it.")]
    for n in range(4):
        messages += [("assistant", f"call {n}"), ("tool", HITS, "search")]
    plan = plan_chat(parts(*messages), policy, COUNTER)
    assert [s.part.message for s in plan.segments] == [2, 4, 6]  # message 8 is in the last turn
    rooms = allocate_rooms(plan, sum(s.tokens for s in plan.segments) // 2)
    assert rooms["2"] < rooms["4"] <= rooms["6"]
    assert sum(rooms.values()) <= sum(s.tokens for s in plan.segments) // 2


def test_content_kinds():
    assert content_kind(HITS) == "json"
    assert content_kind("\n".join(f"12:00:{s:02d} INFO ok" for s in range(20))) == "lines"
    assert content_kind(PASSAGES.replace("\n", " ")) == "text"


def test_a_lone_surrogate_survives_compression_where_it_is_kept():
    text = "Intro \ud800 line.\n" + "\n".join(f"2026-01-01 INFO worker {i} ok" for i in range(80))
    policy = ChatPolicy(min_tokens=10)
    plan = plan_chat(parts(("user", "What happened?"), ("tool", text, "run")), policy, COUNTER)
    [job] = segment_jobs(plan, Budget(ratio=0.3), "extractive", policy)
    assert "\ud800" not in job.text and len(job.text) == len(text) == len(without_surrogates(text))
    new = compress_jobs(plan, Budget(ratio=0.3), policy)["1"]
    assert new.startswith("Intro \ud800 line.")
