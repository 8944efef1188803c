"""The chat policy on its own: what the budget covers and the fit loop."""

import pytest

from ctxzip import Budget, get_token_counter
from ctxzip.chat import BudgetFit, ChatPolicy, TextPart, plan_chat
from ctxzip.errors import BudgetTooSmallError

COUNTER = get_token_counter("cl100k_base")
LONG = "Retrieved passage about tides and the moon. " * 30


def test_tokens_cap_the_whole_prompt_and_ratio_the_compressible_parts():
    parts = [TextPart(0, None, "system", "Answer briefly."), TextPart(1, None, "tool", LONG),
             TextPart(2, None, "user", "Why are there tides?")]
    plan = plan_chat(parts, ChatPolicy(min_tokens=10), COUNTER)
    assert [s.key for s in plan.segments] == ["1"] and plan.query == "Why are there tides?"
    fixed = COUNTER.count("Answer briefly.") + COUNTER.count("Why are there tides?")
    assert plan.fixed_tokens == fixed
    assert plan.limits(Budget(tokens=100)) == (100, 100 - fixed)
    limit, room = plan.limits(Budget(ratio=0.5))
    assert room == int(0.5 * COUNTER.count(LONG)) and limit == fixed + room


def test_the_fit_loop_shrinks_by_what_the_output_went_over():
    fit = BudgetFit(room=100, limit=110)
    tried = []
    for room in fit:
        tried.append(room)
        if fit.accept(kept_tokens=room, used=room + 15):  # the output always costs 15 more where it lands
            break
    assert tried == [100, 95] and fit.done
    with pytest.raises(BudgetTooSmallError, match="leave no room"):
        list(BudgetFit(room=0, limit=10))
    never = BudgetFit(room=50, limit=10, attempts=3)
    with pytest.raises(BudgetTooSmallError, match="could not fit"):
        for room in never:
            never.accept(kept_tokens=room, used=11)  # always one over, whatever the room
