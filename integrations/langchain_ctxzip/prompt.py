"""`CtxzipPromptCompressor`: a Runnable that fits a chat prompt into a token budget.

    chain = prompt | CtxzipPromptCompressor(budget=1000) | llm

The policy and the budget's meaning are the sidecar's (`ctxzip.chat`): long `user`/`tool`/`function`
contents may be compressed, the system prompt and the final user message (the question) are not
unless asked; a long user message that holds its own context ("Context: ... Question: ...") is split
by the shared splitter and only its context is compressed; a message (in `additional_kwargs`) or a content part marked `"ctxzip_compress": True` is
compressed wherever it is (retrieved context), one marked False never is. Marks are removed from what
goes to the model. `Budget(tokens=N)` caps the whole prompt; `Budget(ratio=r)` shrinks the
compressible parts to r of their size.
"""

from __future__ import annotations

from typing import Any, Sequence

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import ChatPromptValue, PromptValue
from langchain_core.runnables import RunnableConfig, RunnableSerializable
from pydantic import ConfigDict, Field, PrivateAttr

import ctxzip
from ctxzip.budget import Budget
from ctxzip.chat import DEFAULT_ROLES, MARK, BudgetFit, ChatPolicy, TextPart, plan_chat
from ctxzip.errors import InvalidInputError

from langchain_ctxzip._budget import CompressorSpec

_ROLE_OF_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "function"}


def message_role(message: BaseMessage) -> str:
    """The OpenAI-style role of a LangChain message (`ChatMessage` carries its own)."""
    return getattr(message, "role", None) or _ROLE_OF_TYPE.get(message.type, message.type)


class CtxzipPromptCompressor(CompressorSpec, RunnableSerializable[Any, Any]):
    """Compress a `ChatPromptValue` (or a list of messages) so its text fits `budget` tokens.

    Returns the same kind it was given. Compressed messages carry `response_metadata["ctxzip"]`
    (kept spans of their original text, token counts, method).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    budget: Budget
    compressor: Any = "extractive"
    compressor_options: dict[str, Any] = Field(default_factory=dict)
    roles: tuple[str, ...] = tuple(sorted(DEFAULT_ROLES))
    min_tokens: int = ChatPolicy.min_tokens  # shorter contents pass unchanged (the sidecar's default)
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
        """The messages with their compressible parts compressed so the prompt fits the budget."""
        counter = self.budget.counter
        policy = ChatPolicy(frozenset(self.roles), self.min_tokens, self.compress_last_user)
        plan = plan_chat(message_parts(messages), policy, counter)
        limit, room = plan.limits(self.budget)
        if plan.original_tokens <= limit or not plan.segments:
            return _strip_marks(messages, {}, {})
        documents = [ctxzip.Document(s.text, s.key) for s in plan.segments]
        parts = {s.part.key: s.part for s in plan.segments}  # a split part has several segments
        part_tokens = dict(zip(parts, counter.count_many([p.text for p in parts.values()])))
        fit = BudgetFit(room, limit)
        for room in fit:
            budget = Budget(tokens=room, tokenizer=self.budget.tokenizer)
            result = self.ctxzip_compressor.compress(documents, query=plan.query, budget=budget)
            texts = {doc.id: doc.text for doc in result.documents}
            new = plan.part_texts({s.key: texts.get(s.key, "") for s in plan.segments})
            replacements = {(parts[k].message, parts[k].part): text for k, text in new.items()}
            used = plan.original_tokens - sum(part_tokens.values()) + sum(counter.count_many(list(new.values())))
            if fit.accept(result.compressed_tokens, used):
                break
        kept: dict[str, list[tuple[int, int]]] = {}
        for span in result.kept:
            kept.setdefault(span.doc_id, []).append((span.start, span.end))
        spans = plan.part_spans(kept)
        info = {
            (part.message, part.part): {
                "method": result.method, "kept": [list(span) for span in spans.get(key, [])],
                "original_tokens": part_tokens[key],
                "compressed_tokens": counter.count(replacements[(part.message, part.part)]),
            }
            for key, part in parts.items()
        }
        return _strip_marks(messages, replacements, info)


def message_parts(messages: Sequence[BaseMessage]) -> list[TextPart]:
    """Every text of every message; a part's own mark wins over its message's."""
    parts = []
    for i, message in enumerate(messages):
        message_mark = message.additional_kwargs.get(MARK)
        for j, text, part_mark in _texts(message.content):
            parts.append(TextPart(i, j, message_role(message), text, part_mark if part_mark is not None else message_mark))
    return parts


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
