"""The chat policy shared by the gateway and the integrations: what in a list of messages may be
compressed, which text is the question, what the budget covers, and the one loop that fits the
compressed parts into it.

Frameworks hand their messages over as `TextPart`s (one per text of a message; adapters in
`ctxzip_service` and `langchain_ctxzip` build them) and rewrite their own message types from the
replacements this module returns.

The policy:
- a part marked `ctxzip_compress: true` is compressed wherever it is (retrieved context); one marked
  false never is;
- otherwise a part is compressed when its role is in `roles` (default user, tool, function: system and
  developer prompts only when named there or marked), it has at least `min_tokens` tokens, and it is
  not the final user message (the question) unless `compress_last_user`;
- the final user message's uncompressed text is the query the compressor answers to.

What the budget covers: `Budget(tokens=N)` caps the whole prompt (every part's text, compressed or
not); `Budget(ratio=r)` shrinks the compressible parts to r of their size and leaves the rest alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from ctxzip.budget import Budget, TokenCounter
from ctxzip.errors import BudgetTooSmallError

MARK = "ctxzip_compress"
DEFAULT_ROLES = frozenset({"user", "tool", "function"})


@dataclass(frozen=True)
class ChatPolicy:
    roles: frozenset[str] = DEFAULT_ROLES
    min_tokens: int = 256  # shorter texts pass unchanged
    compress_last_user: bool = False


@dataclass(frozen=True)
class TextPart:
    """One text of a message: `part` is its index in a list content, None when the content is a string."""

    message: int
    part: int | None
    role: str
    text: str
    mark: bool | None = None

    @property
    def key(self) -> str:
        """A stable name for this text: "3" for message 3's string content, "3.1" for its part 1."""
        return f"{self.message}" if self.part is None else f"{self.message}.{self.part}"


@dataclass(frozen=True)
class Segment:
    """A text the policy lets the compressor shorten."""

    part: TextPart
    tokens: int

    @property
    def key(self) -> str:
        return self.part.key

    @property
    def text(self) -> str:
        return self.part.text


@dataclass
class ChatPlan:
    segments: list[Segment]
    query: str | None
    original_tokens: int  # every text of the request, in the budget's tokenizer
    marked: bool  # some part carried a mark (so the request is rewritten even if nothing shrinks)
    fixed_tokens: int = field(init=False)  # what stays as it is

    def __post_init__(self) -> None:
        self.fixed_tokens = self.original_tokens - sum(s.tokens for s in self.segments)

    def limits(self, budget: Budget) -> tuple[int, int]:
        """(tokens the whole prompt may use, tokens the compressible segments may use)."""
        if budget.tokens is not None:
            return budget.tokens, budget.tokens - self.fixed_tokens
        room = math.floor(budget.ratio * (self.original_tokens - self.fixed_tokens))
        return self.fixed_tokens + room, room


def plan_chat(parts: Sequence[TextPart], policy: ChatPolicy, counter: TokenCounter) -> ChatPlan:
    """Which parts are compressible, the query (the final user message) and the request's tokens."""
    last_user = max((p.message for p in parts if p.role == "user"), default=None)
    segments: list[Segment] = []
    query_parts: list[str] = []
    total = 0
    marked = False
    for part in parts:
        tokens = counter.count(part.text)
        total += tokens
        marked = marked or part.mark is not None
        role_ok = part.role in policy.roles
        position_ok = part.message != last_user or policy.compress_last_user
        if part.mark is True or (part.mark is None and role_ok and position_ok and tokens >= max(policy.min_tokens, 1)):
            segments.append(Segment(part, tokens))
        elif part.message == last_user:
            query_parts.append(part.text)
    return ChatPlan(segments, "\n".join(query_parts).strip() or None, total, marked)


class BudgetFit:
    """The one fit loop: compress into a room, measure what the output really costs where it lands
    (parts counted one by one, metadata lines around nodes), and shrink the room by the excess.

        fit = BudgetFit(room, limit)
        for room in fit:
            result = compress(Budget(tokens=room))
            if fit.accept(result.compressed_tokens, measured_total):
                break
    """

    def __init__(self, room: int, limit: int, attempts: int = 8, what: str = "the prompt") -> None:
        self.room, self.limit, self.attempts, self.what = room, limit, attempts, what
        self.done = False

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.attempts):
            if self.room < 1:
                raise BudgetTooSmallError(
                    f"the parts of {self.what} that must stay as they are leave no room in a budget of {self.limit} tokens"
                )
            yield self.room
            if self.done:
                return
        raise BudgetTooSmallError(f"could not fit {self.what} into {self.limit} tokens")

    def accept(self, kept_tokens: int, used: int) -> bool:
        """Whether `used` tokens fit; if not, the next room is what was kept less the excess."""
        if used <= self.limit:
            self.done = True
            return True
        self.room = min(self.room, kept_tokens) - (used - self.limit)
        return False
