"""Chat compression for the routes (OpenAI chat completions, Anthropic messages, /v1/compress messages):
the chat policy's plan, one compression job per segment through the engine, the budget fit, and the
honest count of what went in and out.

Each segment is compressed on its own, for the question before it, so the same conversation prefix
always gives the same bytes (the engine's result cache, keyed by a hash of the segment's content,
question, method and budget, makes the repeat free). JSON, logs and tables go to the structured
method; a structured segment whose skeleton alone does not fit its budget, or a JSON segment that a
method other than `json` would turn into something that no longer parses, is left as it is (valid
JSON that is too long beats broken JSON).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Sequence

import anyio.to_thread

from ctxzip.chat import BudgetFit, ChatPlan, ChatPolicy, Job, TextPart, plan_chat, segment_jobs
from ctxzip.document import Document
from ctxzip.errors import CtxzipError
from ctxzip.structured.json_units import is_json
from ctxzip_service.engine import CompressionEngine
from ctxzip_service.errors import ServiceError, from_ctxzip_error
from ctxzip_service.metrics import Metrics
from ctxzip_service.schemas import PolicyIn
from ctxzip_service.settings import ServiceSettings

INLINE_PLAN_CHARS = 20_000  # below this, counting tokens on the event loop is cheaper than a thread hop


@dataclass
class ChatCompression:
    """What the policy did to a request's texts."""

    plan: ChatPlan
    replacements: dict[str, str]  # part key -> new text
    compressed_tokens: int  # every text of the request after compression, as the plan counts them
    methods: list[str] = field(default_factory=list)
    cached: bool = False  # every job came from the result cache
    left: list[str] = field(default_factory=list)  # segments left as they were (structure did not fit)
    enabled: bool = True

    @property
    def compressed(self) -> bool:
        return bool(self.methods)

    def headers(self) -> dict[str, str]:
        headers = {"x-ctxzip-original-tokens": str(self.plan.original_tokens),
                   "x-ctxzip-compressed-tokens": str(self.compressed_tokens)}
        if self.methods:
            headers["x-ctxzip-method"] = ",".join(self.methods)
        kinds = sorted({s.kind for s in self.plan.segments})
        if kinds and self.enabled:
            headers["x-ctxzip-content"] = ",".join(kinds)
        if self.plan.splits:
            # How each user message was split; "unsure: ..." = left alone on purpose.
            headers["x-ctxzip-split"] = "; ".join(f"{k}={v}" for k, v in sorted(self.plan.splits.items()))[:500]
        if self.left:
            headers["x-ctxzip-left-unchanged"] = ",".join(self.left)[:500]
        return headers


def resolve_policy(settings: ServiceSettings, override: PolicyIn | None) -> ChatPolicy:
    """Server defaults, each replaced by the request's `ctxzip` field where it sets one."""
    o = override or PolicyIn()

    def pick(name: str, default):
        value = getattr(o, name, None)
        return default if value is None else value

    tools = {**settings.tool_policy, **(o.tools or {})}
    return ChatPolicy(
        roles=frozenset(pick("roles", settings.compress_roles)),
        min_tokens=pick("min_tokens", settings.min_tokens),
        compress_last_user=pick("compress_last_user", settings.compress_last_user),
        split_user=pick("split_user", settings.split_user),
        tools=tools,
        default_tool=pick("default_tool", settings.default_tool_policy),
        keep_last_turns=pick("keep_last_turns", settings.keep_last_turns),
        structured_method=settings.structured_method,
    )


class ChatCompressor:
    def __init__(self, settings: ServiceSettings, engine: CompressionEngine, metrics: Metrics) -> None:
        self.settings, self.engine, self.metrics = settings, engine, metrics

    async def compress(self, parts: Sequence[TextPart], override: PolicyIn | None, route: str) -> ChatCompression:
        override = override or PolicyIn()
        method = self.engine.check_method(override.method, override.options)
        budget = self.engine.budget(override.budget)
        try:
            policy = resolve_policy(self.settings, override)
        except CtxzipError as exc:
            raise from_ctxzip_error(exc) from None
        counter = budget.counter
        if sum(len(p.text) for p in parts) > INLINE_PLAN_CHARS:  # counting a long prompt would stall the loop
            plan = await anyio.to_thread.run_sync(plan_chat, list(parts), policy, counter)
        else:
            plan = plan_chat(parts, policy, counter)
        if not plan.segments or not override.enabled:
            return ChatCompression(plan, {}, plan.original_tokens, enabled=override.enabled)
        if policy.structured_method:
            self.engine.check_method(policy.structured_method, {})

        limit, room = plan.limits(budget)
        plan_texts = {p.key: p.text for p in parts}
        part_tokens = {p.key: t for p, t in zip(parts, counter.count_many([p.text for p in parts]))}

        def measure(outputs: dict[str, str]) -> tuple[dict[str, str], int]:
            """The new part texts and the request's tokens with them, counted part by part as sent."""
            replacements = plan.part_texts(outputs)
            new = counter.count_many(list(replacements.values())) if replacements else []
            return replacements, plan.original_tokens - sum(part_tokens[k] for k in replacements) + sum(new)

        if budget.tokens is None:
            jobs = segment_jobs(plan, budget, method, policy)
            outputs, cached, left = await self._run(jobs, method, override.options)
            replacements, compressed_tokens = measure(outputs)
        else:
            try:
                fit = BudgetFit(room, limit, what="the request")
                for room in fit:
                    jobs = segment_jobs(plan, budget, method, policy, room)
                    outputs, cached, left = await self._run(jobs, method, override.options)
                    replacements, compressed_tokens = measure(outputs)
                    kept = compressed_tokens - plan.fixed_tokens
                    if fit.accept(kept, compressed_tokens):
                        break
            except CtxzipError as exc:
                raise from_ctxzip_error(exc) from None
        self._count(jobs, outputs, route, counter)
        methods = sorted({job.method for job in jobs if job.key in outputs and job.key not in left})
        replacements = {k: v for k, v in replacements.items() if v != plan_texts[k]}
        return ChatCompression(plan, replacements, compressed_tokens, methods, cached and bool(jobs), left)

    async def _run(self, jobs: list[Job], method: str, options: dict) -> tuple[dict[str, str], bool, list[str]]:
        """Every job at once (the engine batches and caches); a structured job whose skeleton does
        not fit its budget leaves its segment as it was."""
        async def one(job: Job):
            try:
                result, cached = await self.engine.compress(
                    job.method, options if job.method == method else {}, [Document(job.text, job.key)],
                    job.query, job.budget)
            except ServiceError as exc:
                if exc.code == "budget_too_small" and job.method != method:
                    return job.key, job.segment.text, True, True
                raise
            output = job.output(result)
            if job.segment.kind == "json" and not is_json(output):  # JSON stays JSON, or is left alone
                return job.key, job.segment.text, cached, True
            return job.key, output, cached, False

        done = await asyncio.gather(*(one(job) for job in jobs))
        outputs = {key: text for key, text, _, _ in done}
        left = [key for key, _, _, unchanged in done if unchanged]
        return outputs, all(cached for _, _, cached, _ in done), left

    def _count(self, jobs: list[Job], outputs: dict[str, str], route: str, counter) -> None:
        """Prometheus: tokens in and out of every compressed segment, by route, method and content kind."""
        for job in jobs:
            if job.key not in outputs:
                continue
            kind = job.segment.kind
            self.metrics.chat_tokens_in.labels(route, job.method, kind).inc(job.segment.tokens)
            self.metrics.chat_tokens_out.labels(route, job.method, kind).inc(counter.count(outputs[job.key]))
