"""The chat policy on its own: which parts of a request are compressible, and the query."""

from __future__ import annotations

from ctxzip.budget import get_token_counter
from ctxzip.chat import plan_chat
from ctxzip_service.policy import message_parts, resolve_policy, rewrite_messages
from ctxzip_service.schemas import ChatMessage, PolicyIn

counter = get_token_counter("cl100k_base")
LONG = "This is a long sentence about something. " * 40


def messages(*items) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in items]


def plan_compression(chat, policy, counter):
    return plan_chat(message_parts(chat), policy, counter)


def default_policy(**override):
    return resolve_policy(["user", "tool", "function"], 50, False, PolicyIn(**override) if override else None)


def test_defaults_take_long_user_and_tool_content_but_not_system_or_question():
    chat = messages({"role": "system", "content": LONG}, {"role": "user", "content": LONG},
                    {"role": "assistant", "content": LONG}, {"role": "tool", "content": LONG, "tool_call_id": "1"},
                    {"role": "user", "content": "short"}, {"role": "user", "content": LONG + " final?"})
    plan = plan_compression(chat, default_policy(), counter)
    # Not the system prompt, the assistant, "short" (under min_tokens), nor the first user message: it
    # ended its turn, so it was that turn's question and stays as it was sent (prompt caches). The
    # final message is split: its context is compressed, its question ("... final?") is not.
    assert [s.key for s in plan.segments] == ["3", "5#0"]
    assert plan.segments[1].kind == "context" and plan.query.endswith("final?") and len(plan.query) < 100
    assert plan.original_tokens == sum(counter.count(m.content) for m in chat)


def test_overrides_roles_size_and_question():
    chat = messages({"role": "system", "content": LONG}, {"role": "user", "content": LONG})
    assert [s.key for s in plan_compression(chat, default_policy(), counter).segments] == []
    asked = default_policy(roles=["system", "user"], compress_last_user=True)
    assert [s.key for s in plan_compression(chat, asked, counter).segments] == ["0", "1"]
    assert plan_compression(chat, asked, counter).query is None
    huge_minimum = default_policy(roles=["system"], min_tokens=10_000)
    assert plan_compression(chat, huge_minimum, counter).segments == []


def test_marks_win_over_roles_and_are_removed():
    raw = [{"role": "system", "content": [{"type": "text", "text": "ctx", "ctxzip_compress": True}]},
           {"role": "tool", "content": [{"type": "text", "text": LONG, "ctxzip_compress": False}], "tool_call_id": "7"},
           {"role": "user", "content": [{"type": "text", "text": LONG, "ctxzip_compress": True},
                                        {"type": "image_url", "image_url": {"url": "data:,"}},
                                        {"type": "text", "text": "the question"}]}]
    plan = plan_compression(messages(*raw), default_policy(), counter)
    assert [s.key for s in plan.segments] == ["0.0", "2.0"]
    assert plan.marked and plan.query == "the question"
    out = rewrite_messages(raw, {"0.0": "c", "2.0": "short"})
    assert out[0]["content"] == [{"type": "text", "text": "c"}]
    assert out[1]["content"] == [{"type": "text", "text": LONG}] and out[1]["tool_call_id"] == "7"
    assert out[2]["content"][0] == {"type": "text", "text": "short"}
    assert out[2]["content"][1:] == raw[2]["content"][1:]
    assert raw[0]["content"][0]["ctxzip_compress"] is True  # the input is not modified
