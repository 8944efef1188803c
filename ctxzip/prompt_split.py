"""Where the context ends and the question starts in one unmarked prompt.

An unchanged app sends a single user message: instructions, retrieved passages and the question in
one string. `split_prompt(text)` finds the context part(s) to compress and the question that must
stay byte-identical, trying the explicit layouts first:

1. `<context>`/`<document>`/`<documents>` tags: their insides are context; the question is what
   follows the last closing tag (else what precedes the first opening tag);
2. a `Question:` / `Query:` line (markdown emphasis allowed): context is what precedes it (after a
   `Context:` line when there is one), the question is the rest;
3. markdown fences: their insides are context, the question is the text after the last fence;
4. a `---` rule: context before the last rule, question after it;
5. else the last paragraph, when it is one line that reads as a question or a request; else the
   trailing sentences that end in `?`.

A split is *sure* only when the question is not empty, the context is the larger part and carries
at least `min_context_chars`; anything else is reported unsure (`how`, `sure=False`, no context
spans), and the caller leaves the message alone and says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_CONTEXT_CHARS = 200
MAX_QUESTION_CHARS = 600

_TAG = re.compile(r"<(context|documents?)\b[^>]*>(.*?)</\1\s*>", re.S | re.I)
_QUESTION_LINE = re.compile(r"^[ \t]*(?:[*_#>]+[ \t]*)?(?:question|query|q)[ \t]*[*_]*[ \t]*:[ \t]*[*_]*", re.I | re.M)
_CONTEXT_LINE = re.compile(r"^[ \t]*(?:[*_#>]+[ \t]*)?(?:context|documents?|passages?|sources?)[ \t]*[*_]*[ \t]*:[ \t]*[*_]*[ \t]*\n?",
                           re.I | re.M)
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.S | re.M)
_RULE = re.compile(r"^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$", re.M)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_ANSWER_CUE = re.compile(r"\n[ \t]*(?:[*_]+)?answer[ \t]*[*_]*[ \t]*:[ \t]*[*_]*\s*$", re.I)
_ASKING = re.compile(
    r"^\s*(who|whom|whose|what|which|when|where|why|how|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"has|have|had|list|name|give|tell|explain|describe|summari[sz]e|compare|find|identify|answer|based on|using|"
    r"according to)\b", re.I)


@dataclass(frozen=True)
class PromptSplit:
    text: str
    context: tuple[tuple[int, int], ...] = ()  # spans to compress
    question: tuple[int, int] | None = None  # span that stays byte-identical (the query)
    how: str = "none"
    sure: bool = False
    why: str = ""

    @property
    def question_text(self) -> str:
        return self.text[self.question[0]:self.question[1]].strip() if self.question else ""

    @property
    def query(self) -> str:
        """The question as a retrieval query: without its `Question:` label or a trailing `Answer:` cue."""
        query = _QUESTION_LINE.sub("", self.question_text, count=1)
        return _ANSWER_CUE.sub("", query).strip()

    @property
    def context_chars(self) -> int:
        return sum(e - s for s, e in self.context)

    def rebuild(self, replacements: list[str]) -> str:
        """The text with each context span replaced, everything else byte-identical."""
        if len(replacements) != len(self.context):
            raise ValueError("one replacement per context span")
        pieces, at = [], 0
        for (s, e), new in zip(self.context, replacements):
            pieces += [self.text[at:s], new]
            at = e
        pieces.append(self.text[at:])
        return "".join(pieces)


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _judge(text: str, context: list[tuple[int, int]], question: tuple[int, int] | None, how: str,
           min_context_chars: int) -> PromptSplit:
    context = [span for span in (_strip_span(text, s, e) for s, e in context) if span[1] > span[0]]
    question = _strip_span(text, *question) if question else None
    size = sum(e - s for s, e in context)
    if not question or question[1] <= question[0]:
        return PromptSplit(text, how=how, why="no question after the context")
    if size < min_context_chars:
        return PromptSplit(text, how=how, why=f"context under {min_context_chars} characters")
    if size <= question[1] - question[0]:
        return PromptSplit(text, how=how, why="the question part is as long as the context")
    return PromptSplit(text, tuple(context), question, how, True)


def _enclosed(text: str, pattern, reason: str, min_chars: int) -> PromptSplit | None:
    """Context inside blocks (group 2 of `pattern`); the question after the last block, else before the first."""
    blocks = list(pattern.finditer(text))
    if not blocks:
        return None
    context = [(m.start(2), m.end(2)) for m in blocks]
    after = (blocks[-1].end(), len(text))
    question = after if text[after[0]:].strip() else (0, blocks[0].start())
    return _judge(text, context, question, reason, min_chars)


def _tags(text: str, min_chars: int) -> PromptSplit | None:
    return _enclosed(text, _TAG, "context_tags", min_chars)


def _question_marker(text: str, min_chars: int) -> PromptSplit | None:
    markers = list(_QUESTION_LINE.finditer(text))
    if not markers:
        return None
    marker = markers[-1]
    head = text[:marker.start()]
    labels = list(_CONTEXT_LINE.finditer(head))
    start = labels[-1].end() if labels else 0
    return _judge(text, [(start, marker.start())], (marker.start(), len(text)), "question_marker", min_chars)


def _fences(text: str, min_chars: int) -> PromptSplit | None:
    return _enclosed(text, _FENCE, "fence", min_chars)


def _rule(text: str, min_chars: int) -> PromptSplit | None:
    rules = list(_RULE.finditer(text))
    if not rules:
        return None
    last = rules[-1]
    return _judge(text, [(0, last.start())], (last.end(), len(text)), "rule", min_chars)


def _last_paragraph(text: str, min_chars: int) -> PromptSplit | None:
    breaks = list(_PARAGRAPH_BREAK.finditer(text.rstrip()))
    if not breaks:
        return None
    last = breaks[-1]
    paragraph = text[last.end():].strip()
    # A question or a request reads as one line; a longer last paragraph is more likely a passage.
    if "\n" in paragraph or len(paragraph) > MAX_QUESTION_CHARS:
        return None
    if not paragraph.endswith("?") and not _ASKING.match(paragraph):
        return None
    return _judge(text, [(0, last.start())], (last.end(), len(text)), "last_paragraph", min_chars)


def _question_sentences(text: str, min_chars: int) -> PromptSplit | None:
    body = text.rstrip()
    if not body.endswith("?"):
        return None
    starts = [0] + [m.end() for m in _SENTENCE_END.finditer(body)]
    first = len(starts) - 1
    while first > 0 and body[:starts[first]].rstrip().endswith("?"):
        first -= 1  # the run of trailing sentences that each end in "?"
    return _judge(text, [(0, starts[first])], (starts[first], len(text)), "question_sentences", min_chars)


FINDERS = (_tags, _question_marker, _fences, _rule, _last_paragraph, _question_sentences)


def split_prompt(text: str, min_context_chars: int = MIN_CONTEXT_CHARS) -> PromptSplit:
    """The first layout that applies decides; an unsure layout stops the search (a later, weaker
    guess would contradict an explicit marker)."""
    for finder in FINDERS:
        found = finder(text, min_context_chars)
        if found is not None:
            return found
    return PromptSplit(text, why="no marker, no trailing question")
