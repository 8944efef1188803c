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

Gateway traffic (unchanged apps and agents):
- an unmarked user message is split into context and question (`ctxzip.prompt_split`): the context
  parts are compressed for that question, the question and everything around the context stay
  byte-identical; a split that is unsure leaves the message alone (`ChatPlan.splits` says why);
- each segment has a kind: "json" (a JSON array or object, anywhere), "lines" (logs, tables,
  listings), "context" (a split's context) or "text"; JSON and lines go to the structured method
  (`json`: valid JSON, marked elisions, no value changed), the rest to the request's method;
- tool results follow a per-tool policy (`tools`: name -> "compress" | "never");
- prompt caches: a segment is compressed for the question that came *before* it in the conversation
  (its own message's question for a split), with a budget of its own under `Budget(ratio=r)`, so its
  output depends only on the conversation up to it: what was sent at turn N is sent again,
  byte-identical, at turn N+1 (`segment_jobs`);
- under `Budget(tokens=N)` the whole conversation shares the budget: older segments give up their
  tokens first and the last `keep_last_turns` turns stay verbatim (earlier turns may then change when
  the conversation outgrows the budget; that is what a hard cap costs).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

from ctxzip.budget import Budget, TokenCounter
from ctxzip.document import CompressionResult, Document, rebuild
from ctxzip.errors import BudgetTooSmallError, InvalidInputError
from ctxzip.prompt_split import split_prompt
from ctxzip.structured.json_units import is_json
from ctxzip.structured.lines import looks_like_lines

MARK = "ctxzip_compress"
DEFAULT_ROLES = frozenset({"user", "tool", "function"})


STRUCTURED_KINDS = frozenset({"json", "lines"})
TOOL_POLICIES = ("compress", "never")
TOOL_ROLES = frozenset({"tool", "function"})


@dataclass(frozen=True)
class ChatPolicy:
    roles: frozenset[str] = DEFAULT_ROLES
    min_tokens: int = 256  # shorter texts pass unchanged
    compress_last_user: bool = False
    split_user: bool = True  # split unmarked user messages into context and question
    tools: Mapping[str, str] = field(default_factory=dict)  # tool name -> "compress" | "never"
    default_tool: str = "compress"  # for tools not named in `tools`
    keep_last_turns: int = 0  # under a token budget, the last K turns stay verbatim
    structured_method: str | None = "json"  # method for JSON, logs and tables (None: the request's method)

    def __post_init__(self) -> None:
        for name, rule in {**self.tools, "(default)": self.default_tool}.items():
            if rule not in TOOL_POLICIES:
                raise InvalidInputError(f"tool policy for {name!r} must be one of {TOOL_POLICIES}, got {rule!r}")
        if self.keep_last_turns < 0:
            raise InvalidInputError("keep_last_turns must be >= 0")

    def __hash__(self) -> int:  # `tools` is a mapping
        return hash((self.roles, self.min_tokens, self.compress_last_user, self.split_user,
                     tuple(sorted(self.tools.items())), self.default_tool, self.keep_last_turns, self.structured_method))

    def tool_allowed(self, tool: str | None) -> bool:
        return self.tools.get(tool or "", self.default_tool) == "compress"


@dataclass(frozen=True)
class TextPart:
    """One text of a message: `part` is its index in a list content, None when the content is a string."""

    message: int
    part: int | None
    role: str
    text: str
    mark: bool | None = None
    sub: int | None = None  # a block inside part `part` (an Anthropic tool_result's text blocks)
    tool: str | None = None  # for tool results: the name of the tool (the per-tool policy)

    @property
    def key(self) -> str:
        """A stable name for this text: "3" for message 3's string content, "3.1" for its part 1,
        "3.1.0" for block 0 inside part 1."""
        key = f"{self.message}" if self.part is None else f"{self.message}.{self.part}"
        return key if self.sub is None else f"{key}.{self.sub}"


@dataclass(frozen=True)
class Segment:
    """A text the policy lets the compressor shorten: a whole part, or span `start:end` of it (a split's context)."""

    part: TextPart
    tokens: int
    kind: str = "text"
    query: str | None = None  # what this segment is compressed for
    start: int = 0
    end: int | None = None  # None: to the end of the part
    index: int | None = None  # the n-th context span of a split part

    @property
    def key(self) -> str:
        return self.part.key if self.index is None else f"{self.part.key}#{self.index}"

    @property
    def text(self) -> str:
        if self.start == 0 and self.end is None:
            return self.part.text
        return self.part.text[self.start:self.end]

    @property
    def stop(self) -> int:
        return len(self.part.text) if self.end is None else self.end


@dataclass
class ChatPlan:
    segments: list[Segment]
    query: str | None
    original_tokens: int  # every text of the request, in the budget's tokenizer
    marked: bool  # some part carried a mark (so the request is rewritten even if nothing shrinks)
    splits: dict[str, str] = field(default_factory=dict)  # part key -> how it was split, or "unsure: why"
    turns: dict[int, int] = field(default_factory=dict)  # message -> turn
    fixed_tokens: int = field(init=False)  # what stays as it is

    def __post_init__(self) -> None:
        self.fixed_tokens = self.original_tokens - sum(s.tokens for s in self.segments)

    def part_texts(self, outputs: Mapping[str, str]) -> dict[str, str]:
        """Each compressed part's new text from its segments' outputs (by segment key); the text
        around a split's context spans (the question, instructions) is kept byte for byte."""
        by_part: dict[str, list[Segment]] = {}
        for segment in self.segments:
            by_part.setdefault(segment.part.key, []).append(segment)
        texts = {}
        for key, segments in by_part.items():
            text, pieces, at = segments[0].part.text, [], 0
            for segment in sorted(segments, key=lambda s: s.start):
                pieces += [text[at:segment.start], outputs.get(segment.key, segment.text)]
                at = segment.stop
            pieces.append(text[at:])
            texts[key] = "".join(pieces)
        return texts

    def part_spans(self, kept: Mapping[str, list[tuple[int, int]]]) -> dict[str, list[tuple[int, int]]]:
        """Kept spans of each compressed part's original text, from its segments' kept spans (offsets
        into the segment): what surrounds a split's context counts as kept."""
        by_part: dict[str, list[Segment]] = {}
        for segment in self.segments:
            by_part.setdefault(segment.part.key, []).append(segment)
        spans: dict[str, list[tuple[int, int]]] = {}
        for key, segments in by_part.items():
            out, at = [], 0
            for segment in sorted(segments, key=lambda s: s.start):
                if segment.start > at:
                    out.append((at, segment.start))
                out += [(segment.start + a, segment.start + b) for a, b in kept.get(segment.key, [])]
                at = segment.stop
            if at < len(segments[0].part.text):
                out.append((at, len(segments[0].part.text)))
            merged: list[tuple[int, int]] = []
            for a, b in out:
                if merged and merged[-1][1] == a:
                    merged[-1] = (merged[-1][0], b)
                elif b > a:
                    merged.append((a, b))
            spans[key] = merged
        return spans

    def limits(self, budget: Budget) -> tuple[int, int]:
        """(tokens the whole prompt may use, tokens the compressible segments may use)."""
        if budget.tokens is not None:
            return budget.tokens, budget.tokens - self.fixed_tokens
        room = math.floor(budget.ratio * (self.original_tokens - self.fixed_tokens))
        return self.fixed_tokens + room, room


def content_kind(text: str) -> str:
    """"json" for a JSON array or object, "lines" for logs, tables and listings (many short lines), else "text"."""
    if is_json(text):
        return "json"
    return "lines" if looks_like_lines(text) else "text"


def message_turns(parts: Sequence[TextPart]) -> dict[int, int]:
    """Turn of each message: a user or assistant message starts a turn, tool results join the turn of
    the call they answer; the system prompt (and anything before the first turn) is turn -1."""
    turns, turn = {}, -1
    for part in sorted(parts, key=lambda p: p.message):
        if part.message in turns:
            continue
        if part.message >= 0 and part.role in ("user", "assistant"):
            turn += 1
        turns[part.message] = turn if part.message >= 0 else -1
    return turns


def plan_chat(parts: Sequence[TextPart], policy: ChatPolicy, counter: TokenCounter) -> ChatPlan:
    """Which parts (or spans of them) are compressible, for which question, and the request's tokens.

    A user message's question is its unmarked text (the question part of a split). A segment in a
    user message is compressed for that message's question (context sent as a user message right
    before the question: for the question that follows); any other segment for the question of the
    last user message before it. The plan's query is the final user message's question.
    """
    parts = list(parts)
    last_user = max((p.message for p in parts if p.role == "user"), default=None)
    turns = message_turns(parts)
    last_turn = max(turns.values(), default=-1)
    tokens = [counter.count(p.text) for p in parts]
    long_enough = [t >= max(policy.min_tokens, 1) for t in tokens]

    order = sorted({p.message: p.role for p in parts}.items())
    next_role = {m: order[k + 1][1] for k, (m, _) in enumerate(order[:-1])}
    user_messages = [m for m, role in order if role == "user"]
    next_user = {m: user_messages[k + 1] for k, m in enumerate(user_messages[:-1])}

    # Pass 1: splits of unmarked user texts that end their turn, and each user message's question.
    splits, split_of, questions = {}, {}, {}
    for n, part in enumerate(parts):
        if part.role != "user":
            continue
        whole = policy.compress_last_user and part.message == last_user
        ends_turn = next_role.get(part.message) != "user"
        if part.mark is None and part.role in policy.roles and long_enough[n] and policy.split_user and not whole \
                and ends_turn:
            split = split_prompt(part.text)
            splits[part.key] = split.how if split.sure else f"unsure: {split.why}"
            if split.sure:
                split_of[n] = split
        if part.mark is not True and not whole:
            question = split_of[n].query if n in split_of else part.text
            questions.setdefault(part.message, []).append(question)
    question_of = {m: "\n".join(q).strip() or None for m, q in questions.items()}

    # Pass 2: the segments.
    segments: list[Segment] = []
    latest: str | None = None  # question of the last user message so far
    for n, part in enumerate(parts):
        if part.role == "user":
            latest = question_of.get(part.message, latest)
        own = question_of.get(part.message) if part.role == "user" else latest
        if part.mark is False:
            continue
        if part.mark is True:
            segments.append(Segment(part, tokens[n], content_kind(part.text), own))
            continue
        if n in split_of:
            for index, (start, end) in enumerate(split_of[n].context):
                text = part.text[start:end]
                segments.append(Segment(part, counter.count(text), "context", split_of[n].query, start, end, index))
            continue
        if not long_enough[n] or part.role not in policy.roles:
            continue
        if part.role == "user":
            if policy.compress_last_user and part.message == last_user:
                segments.append(Segment(part, tokens[n], content_kind(part.text), None))
            elif part.message != last_user and next_role.get(part.message) == "user":
                # Context sent as its own message right before the question: compressed for that question.
                # A user message that ended its turn was the question then, and stays as it was sent.
                following = question_of.get(next_user[part.message])
                segments.append(Segment(part, tokens[n], content_kind(part.text), following))
            continue
        if part.role in TOOL_ROLES and not policy.tool_allowed(part.tool):
            continue
        if policy.keep_last_turns and turns.get(part.message, -1) > last_turn - policy.keep_last_turns:
            continue
        segments.append(Segment(part, tokens[n], content_kind(part.text), latest))
    query = question_of.get(last_user) if last_user is not None else None
    return ChatPlan(segments, query, sum(tokens), any(p.mark is not None for p in parts), splits, turns)


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


# -- one compression job per segment (prompt-cache safe) ------------------------------------------------

FLOOR_SHARE = 0.1  # under a token budget, older segments shrink first, each to no less than this share
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def without_surrogates(text: str) -> str:
    """Lone surrogates (legal as JSON escapes, not encodable as UTF-8) as U+FFFD, one for one, so a
    span of the cleaned text is the same span of the original."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True)
class Job:
    """One segment to compress on its own: its method, the question it is compressed for, its budget."""

    segment: Segment
    method: str
    budget: Budget

    @property
    def key(self) -> str:
        return self.segment.key

    @property
    def query(self) -> str | None:
        return self.segment.query

    @property
    def text(self) -> str:
        """What the compressor sees: the segment, lone surrogates replaced (spans stay valid)."""
        return without_surrogates(self.segment.text)

    def output(self, result: CompressionResult) -> str:
        """The compressed text, sliced from the original segment (so lone surrogates survive where kept)."""
        if self.text == self.segment.text:
            texts = {d.id: d.text for d in result.documents}
            return texts.get(self.key, "")
        return rebuild([Document(self.segment.text, self.key)], result.kept, result.inserted).get(self.key, "")


def allocate_rooms(plan: ChatPlan, room: int) -> dict[str, int]:
    """Token rooms per segment that add up to `room`: older segments give up their tokens first,
    each down to `FLOOR_SHARE` of its size; past that, every segment shrinks in proportion."""
    rooms = {s.key: s.tokens for s in plan.segments}
    excess = sum(rooms.values()) - room
    if excess <= 0:
        return rooms
    for segment in sorted(plan.segments, key=lambda s: (s.part.message, s.start)):
        floor = max(1, math.ceil(FLOOR_SHARE * segment.tokens))
        cut = min(excess, rooms[segment.key] - floor)
        rooms[segment.key] -= max(cut, 0)
        excess -= max(cut, 0)
        if excess <= 0:
            return rooms
    total = sum(rooms.values())
    return {key: max(1, math.floor(value * room / total)) for key, value in rooms.items()}


def segment_jobs(plan: ChatPlan, budget: Budget, method: str, policy: ChatPolicy,
                 room: int | None = None) -> list[Job]:
    """A job per segment. Under `Budget(ratio=r)` each segment gets r of itself, so its output depends
    on nothing but the segment and the question before it; under `Budget(tokens=N)` the segments share
    `room` (default: what the plan leaves for them), older ones first. Structured kinds go to the
    policy's structured method."""
    if budget.tokens is not None:
        rooms = allocate_rooms(plan, plan.limits(budget)[1] if room is None else room)
    jobs = []
    for segment in plan.segments:
        chosen = policy.structured_method if segment.kind in STRUCTURED_KINDS and policy.structured_method else method
        if budget.tokens is not None:
            if rooms[segment.key] >= segment.tokens:
                continue  # fits as it is
            job_budget = Budget(tokens=max(1, rooms[segment.key]), tokenizer=budget.tokenizer)
        else:
            job_budget = Budget(ratio=budget.ratio, tokenizer=budget.tokenizer)
        jobs.append(Job(segment, chosen, job_budget))
    return jobs
