"""A simulated provider (`sim/<tier>` model ids) for demos and load tests when no key is set.

Latency is lognormal per tier (a fair fit for LLM response times: a floor, a long right tail),
token counts follow the prompt and a per-tier distribution, and a configurable share of calls
fail with the same `ProviderError`s the real clients raise. Everything it says starts with
"[simulated]" and its responses carry provider "sim", so no page can mistake it for a model.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    ErrorKind,
    FinishReason,
    ProviderError,
    StreamEvent,
    Usage,
    elapsed_ms,
    message_text,
)

DEFAULT_TIER = "medium"
_RETRYABLE_ERRORS: tuple[tuple[ErrorKind, int | None], ...] = (
    ("rate_limit", 429),
    ("overloaded", 529),
    ("server", 500),
    ("timeout", None),
)
_SENTENCES = (
    "The short answer is that it depends on the constraints you care about most.",
    "A practical first step is to measure the current behaviour before changing anything.",
    "Most teams get the largest gain from the simplest change, so start there.",
    "There are two common approaches, and each trades latency against cost.",
    "In this case the safer option is to keep the existing interface and add a check.",
    "The numbers suggest the bottleneck is upstream rather than in this component.",
    "A small experiment would settle the question faster than further analysis.",
    "Edge cases matter here: empty inputs, very long inputs, and concurrent updates.",
    "Document the decision so the next person knows why it was made.",
    "If the requirement changes, the same structure still applies with new weights.",
)


@dataclass(slots=True, kw_only=True, frozen=True)
class SimTier:
    latency_median_ms: float
    latency_sigma: float = 0.5
    output_tokens_median: int = 150
    output_tokens_sigma: float = 0.4
    reasoning_ratio: float = 0.0  # reasoning tokens per visible output token, on average


DEFAULT_TIERS: dict[str, SimTier] = {
    "simple": SimTier(latency_median_ms=250, output_tokens_median=60),
    "medium": SimTier(latency_median_ms=600, output_tokens_median=180),
    "complex": SimTier(latency_median_ms=1500, output_tokens_median=400, reasoning_ratio=1.5),
}


@dataclass(slots=True, kw_only=True)
class SimConfig:
    tiers: dict[str, SimTier] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    latency_scale: float = 1.0  # 0 = answer at once (tests, gateway overhead benchmarks)
    error_rate: float = 0.0
    retryable_share: float = 0.9  # of the errors; the rest are permanent 400s
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("latency_scale", "error_rate", "retryable_share"):
            value = getattr(self, name)
            if value < 0 or (name != "latency_scale" and value > 1):
                raise ValueError(f"simulator {name} out of range: {value}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SimConfig:
        """{"latency_scale": 0, "error_rate": 0.1, "tiers": {"simple": {"latency_median_ms": 100}}}"""
        tiers = dict(DEFAULT_TIERS)
        for name, overrides in (raw.get("tiers") or {}).items():
            if not isinstance(overrides, SimTier):
                overrides = _tier_from(tiers.get(name, DEFAULT_TIERS[DEFAULT_TIER]), name, overrides)
            tiers[name] = overrides
        known = {f.name for f in fields(cls)} - {"tiers"}
        unknown = set(raw) - known - {"tiers"}
        if unknown:
            raise ValueError(f"unknown simulator settings: {sorted(unknown)}")
        return cls(tiers=tiers, **{key: raw[key] for key in known if key in raw})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SimConfig:
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for key, name, parse in (
            ("error_rate", "AIOS_SIM_ERROR_RATE", float),
            ("latency_scale", "AIOS_SIM_LATENCY_SCALE", float),
            ("retryable_share", "AIOS_SIM_RETRYABLE_SHARE", float),
            ("seed", "AIOS_SIM_SEED", int),
        ):
            if env.get(name, "").strip():
                try:
                    raw[key] = parse(env[name])
                except ValueError as exc:
                    raise ValueError(f"{name} must be a {parse.__name__}, got {env[name]!r}") from exc
        if env.get("AIOS_SIM_TIERS", "").strip():
            # {"simple": {"latency_median_ms": 120, "latency_sigma": 0.3, "output_tokens_median": 40}, ...}
            try:
                raw["tiers"] = json.loads(env["AIOS_SIM_TIERS"])
            except ValueError as exc:
                raise ValueError(f"AIOS_SIM_TIERS must be JSON: {exc}") from exc
            if not isinstance(raw["tiers"], dict) or not all(isinstance(v, dict) for v in raw["tiers"].values()):
                raise ValueError("AIOS_SIM_TIERS must map tier names to objects of SimTier fields")
        return cls.from_dict(raw)


def _tier_from(base: SimTier, name: str, overrides: Mapping[str, Any]) -> SimTier:
    """A tier's distributions with `overrides` applied; unknown fields and impossible values fail loudly."""
    allowed = {f.name for f in fields(SimTier)}
    unknown = set(overrides) - allowed
    if unknown:
        raise ValueError(f"unknown fields for simulator tier {name!r}: {sorted(unknown)} (known: {sorted(allowed)})")
    for field_name, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"simulator tier {name!r}: {field_name} must be a number >= 0, got {value!r}")
    if overrides.get("latency_median_ms", base.latency_median_ms) <= 0:
        raise ValueError(f"simulator tier {name!r}: latency_median_ms must be > 0")
    if overrides.get("output_tokens_median", base.output_tokens_median) < 1:
        raise ValueError(f"simulator tier {name!r}: output_tokens_median must be >= 1")
    tier = replace(base, **overrides)
    return replace(tier, output_tokens_median=int(tier.output_tokens_median))


@dataclass(slots=True, kw_only=True)
class _Plan:
    """Everything one simulated call will do, drawn up front so streaming and not agree."""

    latency_s: float
    error: ProviderError | None
    response: ChatResponse


class SimulatorProvider:
    name = "sim"

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig.from_env()
        # One generator for the call sequence (latency, errors): a seeded run replays exactly.
        self._rng = random.Random(self.config.seed)

    def __repr__(self) -> str:
        return f"<SimulatorProvider scale={self.config.latency_scale} error_rate={self.config.error_rate}>"

    async def complete(self, req: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        plan = self._plan(req)
        await self._sleep(plan.latency_s)
        if plan.error:
            raise plan.error
        plan.response.latency_ms = elapsed_ms(started)
        return plan.response

    async def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        plan = self._plan(req)
        response = plan.response
        chunks = _split(response.content, pieces=max(2, min(8, len(response.content) // 40)))
        # Time to first token is about a third of the total, then text arrives evenly.
        await self._sleep(plan.latency_s * (1.0 if plan.error else 0.3))
        if plan.error:
            raise plan.error
        response.first_token_ms = elapsed_ms(started)
        for index, call in enumerate(response.tool_calls):
            # As OpenAI streams a call: id and name first, then the arguments in pieces.
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            yield StreamEvent(tool_calls=[head])
            for piece in _split(call["function"]["arguments"], pieces=2):
                yield StreamEvent(tool_calls=[{"index": index, "function": {"arguments": piece}}])
        for chunk in chunks if not response.tool_calls else ():
            yield StreamEvent(text=chunk, logprobs=_logprobs(chunk, req) if response.logprobs else None)
            await self._sleep(plan.latency_s * 0.7 / len(chunks))
        response.latency_ms = elapsed_ms(started)
        yield StreamEvent(response=response)

    async def aclose(self) -> None:
        return None

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def _plan(self, req: ChatRequest) -> _Plan:
        tier = self.config.tiers.get(req.model) or self.config.tiers.get(DEFAULT_TIER) or DEFAULT_TIERS[DEFAULT_TIER]
        rng = self._rng
        latency_s = rng.lognormvariate(math.log(tier.latency_median_ms), tier.latency_sigma) / 1000
        latency_s *= self.config.latency_scale
        error = self._draw_error(rng, req) if rng.random() < self.config.error_rate else None
        if error is not None and error.kind == "timeout":
            latency_s = req.timeout_s * self.config.latency_scale
        # A request seed fixes the answer (like a real model's seed), independent of call order.
        content_rng = random.Random(f"{req.seed}|{req.model}|{req.messages!r}") if req.seed is not None else rng
        return _Plan(latency_s=latency_s, error=error, response=self._answer(req, tier, content_rng))

    def _draw_error(self, rng: random.Random, req: ChatRequest) -> ProviderError:
        if rng.random() < self.config.retryable_share:
            kind, status = rng.choice(_RETRYABLE_ERRORS)
        else:
            kind, status = "bad_request", 400
        # Scaled like the latency, so a load test at scale 0 that honours Retry-After never waits.
        retry_after = self.config.latency_scale if kind == "rate_limit" else None
        return ProviderError(
            f"simulated {kind} error for sim/{req.model}",
            provider=self.name,
            kind=kind,
            status=status,
            retry_after_s=retry_after,
        )

    def _answer(self, req: ChatRequest, tier: SimTier, rng: random.Random) -> ChatResponse:
        prompt_chars = sum(len(message_text(m.get("content"))) for m in req.messages)
        visible = max(1, round(rng.lognormvariate(math.log(tier.output_tokens_median), tier.output_tokens_sigma)))
        reasoning = round(visible * tier.reasoning_ratio * rng.uniform(0.5, 1.5))
        finish: FinishReason = "stop"
        if req.max_tokens is not None and visible + reasoning > req.max_tokens:
            # Like OpenAI's reasoning models, thinking spends the budget before the answer does.
            reasoning = min(reasoning, req.max_tokens // 2)
            visible, finish = max(0, req.max_tokens - reasoning), "length"
        tool = _tool_to_call(req)
        if tool is not None:  # a short call instead of prose
            arguments = json.dumps(_arguments_for(tool.get("parameters") or {}))
            call = {"id": f"call_sim{rng.getrandbits(48):012x}", "type": "function",
                    "function": {"name": tool["name"], "arguments": arguments}}  # fmt: skip
            return ChatResponse(
                id=f"sim-{rng.getrandbits(48):012x}",
                provider=self.name,
                model=req.model,
                content="",
                finish_reason="tool_calls",
                usage=Usage(input_tokens=max(1, math.ceil(prompt_chars / 4)), output_tokens=1 + len(arguments) // 4),
                tool_calls=[call],
            )
        content = _content(req, visible, rng)
        return ChatResponse(
            id=f"sim-{rng.getrandbits(48):012x}",
            provider=self.name,
            model=req.model,
            content=content,
            logprobs=_logprobs(content, req) if req.extra.get("logprobs") else None,
            finish_reason=finish,
            usage=Usage(
                input_tokens=max(1, math.ceil(prompt_chars / 4)),  # ~4 characters a token in English
                output_tokens=visible + reasoning,
                reasoning_tokens=reasoning,
            ),
        )


def _tool_to_call(req: ChatRequest) -> dict[str, Any] | None:
    """The function a simulated model calls: the one `tool_choice` names, else the one whose name
    and description share most words with the question (under "auto", only if they share one);
    none once a tool has answered (the model then writes its answer) or when tool_choice is "none"."""
    tools = [t["function"] for t in req.extra.get("tools") or () if t.get("type") == "function"]
    choice = req.extra.get("tool_choice", "auto")
    if not tools or choice == "none" or (req.messages and req.messages[-1].get("role") == "tool"):
        return None
    if isinstance(choice, dict):
        return next((t for t in tools if t["name"] == choice["function"]["name"]), tools[0])
    question = _words(next((message_text(m.get("content")) for m in reversed(req.messages)
                            if m.get("role") == "user"), ""))  # fmt: skip

    def overlap(tool: dict[str, Any]) -> int:
        return len(question & _words(f"{tool['name'].replace('_', ' ')} {tool.get('description') or ''}"))

    best = max(tools, key=overlap)  # ties: the first
    # "auto" with nothing in common: the model answers in prose, as a real one would.
    return best if choice == "required" or overlap(best) else None


def _logprobs(text: str, req: ChatRequest) -> dict[str, Any]:
    """OpenAI-shaped logprobs for simulated text: word-sized tokens, each likely but not certain
    (a fixed function of the token, so the same text always scores the same)."""
    top_n = int(req.extra.get("top_logprobs") or 0)
    content = []
    for token in re.findall(r"\s*\S+|\s+", text):  # the tokens add up to the text, spaces included
        logprob = -(((sum(token.encode()) % 97) / 97) ** 2)  # in (-1, 0]
        alternatives = [(token, logprob)] + [(f"{token.strip()}{i}", logprob - 1.5 - i) for i in range(top_n - 1)]
        content.append({
            "token": token, "logprob": round(logprob, 4), "bytes": list(token.encode()),
            "top_logprobs": [{"token": t, "logprob": round(lp, 4), "bytes": list(t.encode())}
                             for t, lp in alternatives[:top_n]],
        })  # fmt: skip
    return {"content": content, "refusal": None}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{3,}", text.lower()))


def _arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    """Placeholder arguments that satisfy the function's JSON Schema: each required property (all
    of them if none is required) gets its enum's first value, its default, or a value of its type."""
    properties = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    return {name: _value_for(properties.get(name) or {}) for name in names}


def _value_for(schema: dict[str, Any]) -> Any:
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object":
        return _arguments_for(schema)
    return {"integer": 1, "number": 1.0, "boolean": True, "array": [], "null": None}.get(kind, "simulated")


def _content(req: ChatRequest, tokens: int, rng: random.Random) -> str:
    """A plausible answer of about `tokens` tokens (4 characters each) that says it is simulated."""
    question = next((message_text(m.get("content")) for m in reversed(req.messages) if m.get("role") == "user"), "")
    text = f"[simulated sim/{req.model}] On {question[:60].strip()!r}: "
    target = max(len(text), tokens * 4)
    while len(text) < target:
        text += rng.choice(_SENTENCES) + " "
    return text[:target].rstrip()


def _split(text: str, *, pieces: int) -> list[str]:
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
