"""`CtxzipPromptCompressor`: a Runnable that fits a chat prompt into a token budget.

    chain = prompt | CtxzipPromptCompressor(budget=1000) | llm

The role policy is the sidecar's: long `user`/`tool`/`function` contents may be compressed, the
system prompt and the final user message (the question) never are; a message (in
`additional_kwargs`) or a content part marked `"ctxzip_compress": True` is compressed wherever it
is (retrieved context), one marked False never is. Marks are removed from what goes to the model.
The budget covers the text of the whole prompt: the compressible parts get what the others leave.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import ChatPromptValue, PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, PrivateAttr

import ctxzip
from ctxzip.budget import Budget
from ctxzip.errors import BudgetTooSmallError, InvalidInputError

from langchain_ctxzip._budget import CompressorSpec

MARK = "ctxzip_compress"
NEVER_BY_ROLE = frozenset({"system", "developer"})  # only an explicit mark compresses these
_ROLE_OF_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function"}
_FIT_ATTEMPTS = 4


def message_role(message: BaseMessage) -> str:
    """The OpenAI-style role of a LangChain message (`ChatMessage` carries its own)."""
    return getattr(message, "role", None) or _ROLE_OF_TYPE.get(message.type, message.type)


@dataclass(frozen=True)
class Segment:
    message: int
    part: int | None  # None: the message content is a string
    text: str
    tokens: int


class CtxzipPromptCompressor(CompressorSpec, RunnableSerializable[Any, Any]):
    """Compress a `ChatPromptValue` (or a list of messages) so its text fits `budget` tokens.

    Returns the same kind it was given. Compressed messages carry `response_metadata["ctxzip"]`
    (kept spans of their original text, token counts, method).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: Budget
    compressor: Any = "extractive"
    compressor_options: dict[str, Any] = Field(default_factory=dict)
    roles: tuple[str, ...] = ("user", "tool", "function")
    min_tokens: int = 256  # shorter contents pass unchanged (the sidecar's default)
    compress_last_user: bool = False
    _instance: Any = PrivateAttr(default=None)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self._call_with_config(self._compress_prompt, input, config, run_type="prompt")

    def _compress_prompt(self, input: Any) -> Any:
        if isinstance(input, ChatPromptValue):
            return ChatPromptValue(messages=self.compress_messages(input.messages))
        if isinstance(input, PromptValue):
            return ChatPromptValue(messages=self.compress_messages(input.to_messages()))
        if isinstance(input, (list, tuple)) and all(isinstance(m, BaseMessage) for m in input):
            return self.compress_messages(list(input))
        raise InvalidInputError(
            f"CtxzipPromptCompressor takes a ChatPromptValue or a list of messages, got {type(input).__name__}"
        )

    def compress_messages(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The messages with their compressible parts compressed so the whole text fits the budget."""
        counter = self.budget.counter
        segments, query, total = self._plan(messages, counter)
        target = self.budget.resolve(total)
        fixed = total - sum(s.tokens for s in segments)
        if total <= target or not segments:
            return _strip_marks(messages, {}, {})
        room = target - fixed
        # Each part is counted on its own, and the joined compressor output is counted once:
        # the two can differ by a few tokens, so shrink the room until the prompt fits.
        for _ in range(_FIT_ATTEMPTS):
            if room < 1:
                raise BudgetTooSmallError(
                    f"the prompt's parts that must stay as they are need {fixed} tokens; the budget is {target}"
                )
            documents = [ctxzip.Document(s.text, str(k)) for k, s in enumerate(segments)]
            result = self.ctxzip_compressor.compress(documents, query=query, budget=Budget(tokens=room, tokenizer=self.budget.tokenizer))
            texts = {doc.id: doc.text for doc in result.documents}
            used = sum(counter.count(texts.get(str(k), "")) for k in range(len(segments)))
            if fixed + used <= target:
                break
            room = min(room, result.compressed_tokens) - (fixed + used - target)  # shrink from what was kept
        else:
            raise BudgetTooSmallError(f"could not fit the prompt into {target} tokens")
        spans: dict[str, list[list[int]]] = {}
        for span in result.kept:
            spans.setdefault(span.doc_id, []).append([span.start, span.end])
        replacements = {(s.message, s.part): texts.get(str(k), "") for k, s in enumerate(segments)}
        info = {
            (s.message, s.part): {"method": result.method, "kept": spans.get(str(k), []), "original_tokens": s.tokens,
                                  "compressed_tokens": counter.count(replacements[(s.message, s.part)])}
            for k, s in enumerate(segments)
        }
        return _strip_marks(messages, replacements, info)

    def _plan(self, messages: Sequence[BaseMessage], counter) -> tuple[list[Segment], str | None, int]:
        """The compressible segments, the query (the final user message) and the prompt's tokens."""
        last_user = max((i for i, m in enumerate(messages) if message_role(m) == "user"), default=None)
        segments: list[Segment] = []
        query_parts: list[str] = []
        total = 0
        for i, message in enumerate(messages):
            role = message_role(message)
            role_ok = role in self.roles and role not in NEVER_BY_ROLE
            position_ok = i != last_user or self.compress_last_user
            message_mark = message.additional_kwargs.get(MARK)
            for part, text, part_mark in _texts(message.content):
                mark = part_mark if part_mark is not None else message_mark
                tokens = counter.count(text)
                total += tokens
                if mark is True or (mark is None and role_ok and position_ok and tokens >= max(self.min_tokens, 1)):
                    segments.append(Segment(i, part, text, tokens))
                elif i == last_user:
                    query_parts.append(text)
        return segments, "\n".join(query_parts).strip() or None, total


def _texts(content: str | list) -> list[tuple[int | None, str, bool | None]]:
    """(part index, text, mark) of each text in a message content (a string or a list of parts)."""
    if isinstance(content, str):
        return [(None, content, None)]
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append((j, part, None))
        elif isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str):
            texts.append((j, part["text"], part.get(MARK)))
    return texts


def _strip_marks(messages: Sequence[BaseMessage], replacements: dict, info: dict) -> list[BaseMessage]:
    """Copies of the messages with replaced texts, provenance attached and marks removed."""
    out = []
    for i, message in enumerate(messages):
        update: dict[str, Any] = {}
        if MARK in message.additional_kwargs:
            update["additional_kwargs"] = {k: v for k, v in message.additional_kwargs.items() if k != MARK}
        content = message.content
        if isinstance(content, str):
            if (i, None) in replacements:
                update["content"] = replacements[(i, None)]
        else:
            parts = []
            for j, part in enumerate(content):
                if isinstance(part, dict):
                    part = {k: v for k, v in part.items() if k != MARK}
                    if (i, j) in replacements:
                        part["text"] = replacements[(i, j)]
                elif (i, j) in replacements:
                    part = replacements[(i, j)]
                parts.append(part)
            if parts != content:
                update["content"] = parts
        touched = [value for (m, _), value in info.items() if m == i]
        if touched:
            update["response_metadata"] = {**message.response_metadata, "ctxzip": touched if len(touched) > 1 else touched[0]}
        out.append(message.model_copy(update=update) if update else message)
    return out
