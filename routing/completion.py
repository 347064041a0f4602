"""Chat completions through the router: route, call the provider (retries, then fallback to the
next alternative), trace every step, record the decision. The gateway and in-process callers
(evaluation's judge, the demo) use the same path.

Every call is a trace: a root span, a `route` span, and one `llm` span per provider attempt
with tokens and cost. Database work (routing, prices, credentials) runs in a thread so the
event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils import timezone

from aios_core import context
from aios_core.versioned import NotLoaded
from observability import get_observability
from observability.pricing import cost_of, prices
from routing import catalog, decisions, policies
from routing.catalog import Endpoint
from routing.chat_schema import PASS_THROUGH
from routing.providers.base import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    StreamEvent,
    backoff_delay,
    call_with_retries,
    has_images,
    message_text,
    uses_tools,
)
from routing.providers.registry import ProviderNotConfigured, provider_for
from routing.router import Constraints, Decision, ModelRouter, NoModelAvailable, learned_router

router = ModelRouter()
# Answers worth keeping: complete ones. A tool call is one too; it is only ever found by an exact
# match (requests with tools skip the semantic lookup and store no embedding).
STORABLE = ("stop", "tool_calls")
# Errors that say the request itself is wrong: another model would refuse it too.
_CALLER_ERRORS = {"bad_request"}


class UnknownModel(LookupError):
    pass


@dataclass
class CompletionRequest:
    messages: list[dict[str, Any]]
    model: str = "auto"
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    constraints: Constraints = field(default_factory=Constraints)
    timeout_s: float = 60.0
    namespace: str = "internal"  # cache namespace: one per API token, so tenants never share answers
    cache_mode: str | None = None  # deterministic | all | off; None: the namespace's (its "off" always wins)
    cache_control: str = ""  # "no-cache" (refresh: don't read, do store) | "no-store" (bypass)
    cache_ttl_s: int | None = None  # this answer's time to live; None: the namespace's TTL
    attributes: dict[str, Any] = field(default_factory=dict)  # for the llm spans and the decision (aios.ab.*)
    # Further OpenAI parameters (routing.chat_schema.ANSWER_EXTRAS and PASS_THROUGH), sent upstream.
    extra: dict[str, Any] = field(default_factory=dict)

    def uses_tools(self) -> bool:
        return "tools" in self.extra or uses_tools(self.messages)

    def params(self) -> dict[str, Any]:
        """Everything besides the messages and the model that changes the answer (the cache keys
        on it): sampling, further parameters, and the routing constraints (they pick the model)."""
        out: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
        }
        out.update((k, v) for k, v in self.extra.items() if k not in PASS_THROUGH)
        constraints = self.constraints.as_dict()
        if constraints:
            out["aios_constraints"] = constraints
        return out


@dataclass
class Caller:
    username: str = ""
    api_token: str = ""


@dataclass
class CompletionResult:
    response: ChatResponse
    endpoint: Endpoint
    decision: Decision | None  # None when answered from the cache
    trace_id: UUID
    cost_usd: Decimal | None
    attempts: int
    cache: str = "bypass"  # hit | semantic-hit | miss | bypass
    similarity: float | None = None


@dataclass
class _CacheCheck:
    """What the cache lookup found, and what a store after a miss needs."""

    result: str  # hit | semantic-hit | miss | bypass
    hit: Any = None
    key: str = ""
    variant: str = ""
    policy: Any = None
    embedding: Any = None
    embedding_text: str = ""  # what `embedding` embeds
    similarity: float | None = None
    store: bool = False

    def embedding_of(self, text: str) -> Any:
        """The lookup's embedding if it embeds `text` (the router's prompt), else None."""
        return self.embedding if self.embedding is not None and self.embedding_text == text else None


def _cache_check(req: CompletionRequest) -> _CacheCheck:
    """Exact, then semantic lookup (sync: database and the embedding model; runs in a thread
    unless the in-process LRU answers first)."""
    from routing import response_cache as rc

    policy = rc.policy_for(req.namespace)
    mode = rc.effective_mode(policy.mode, req.cache_mode)
    if req.cache_control == "no-store" or not rc.cacheable(req.params(), mode):
        return _CacheCheck("bypass")
    params = req.params()
    key = rc.cache_key(req.namespace, req.messages, req.model, params)
    variant = rc.cache_variant(req.model, params)
    refresh = req.cache_control == "no-cache"
    if not refresh:
        hit = rc.lookup_exact(req.namespace, key)
        if hit is not None:
            return _CacheCheck("hit", hit=hit, key=key, policy=policy)
    embedding, similarity, text = None, None, ""
    # Tool calls carry arguments read from the exact words (a city, an id): a paraphrase must
    # never be answered with another prompt's call or with an answer built on other tool results.
    if policy.semantic and not req.uses_tools():
        from routing.cache_verify import conversation_text
        from routing.embeddings import embed

        # A refresh embeds too: the answer it stores must stay findable by meaning.
        text = conversation_text(req.messages)
        embedding = embed(text)
        if not refresh:
            threshold = policy.similarity_threshold
            hit, similarity = rc.lookup_semantic(req.namespace, variant, req.messages, embedding, threshold)
            if hit is not None:
                return _CacheCheck("semantic-hit", hit=hit, key=key, policy=policy, similarity=hit.similarity)
    return _CacheCheck(
        "miss",
        key=key,
        variant=variant,
        policy=policy,
        embedding=embedding,
        embedding_text=text,
        similarity=similarity,
        store=True,
    )


async def _check_cache(req: CompletionRequest) -> _CacheCheck:
    """On the loop when the namespace's policy is known: bypasses and LRU hits cost microseconds;
    database lookups and embeddings go to a thread."""
    from routing import response_cache as rc

    cached = rc._policies.get(req.namespace)
    if cached is not None and time.monotonic() - cached[0] < 5.0:
        policy = cached[1]
        if req.cache_control == "no-store" or not rc.cacheable(
            req.params(), rc.effective_mode(policy.mode, req.cache_mode)
        ):
            return _CacheCheck("bypass")
        if req.cache_control != "no-cache":
            key = rc.cache_key(req.namespace, req.messages, req.model, req.params())
            hit = rc.local.get(req.namespace, key)
            if hit is not None:
                return _CacheCheck("hit", hit=hit, key=key, policy=policy)
    return await sync_to_async(_cache_check, thread_sensitive=False)(req)


async def _traced_lookup(req: CompletionRequest) -> _CacheCheck:
    """The cache lookup as its own span; its accounting runs off the request path."""
    async with get_observability().trace_span("cache.lookup", kind="cache") as cache_span:
        check = await _check_cache(req)
        cache_span.set_attributes({"aios.cache.result": check.result, "aios.cache.namespace": req.namespace})
        if check.similarity is not None:
            cache_span.set_attribute("aios.cache.similarity", round(check.similarity, 4))
    if check.result != "bypass":
        asyncio.get_running_loop().run_in_executor(None, _after_lookup, check)
    return check


def _after_lookup(check: _CacheCheck) -> None:
    from routing import response_cache as rc

    if check.result in ("hit", "semantic-hit"):
        rc.note_hit(check.hit.entry_id)
        rc.record(check.policy.namespace, check.result, saved_usd=check.hit.saved_usd, saved_ms=check.hit.saved_ms)
    elif check.result == "miss":
        rc.record(check.policy.namespace, "miss")


def _store(check: _CacheCheck, req: CompletionRequest, result: CompletionResult) -> None:
    from routing import response_cache as rc

    r = result.response
    rc.store(
        policy=check.policy,
        key=check.key,
        messages=req.messages,
        params=req.params(),
        embedding=check.embedding,
        response={
            "content": r.content,
            "model": r.model,
            "finish_reason": r.finish_reason,
            **({"tool_calls": r.tool_calls} if r.tool_calls else {}),
            **({"logprobs": r.logprobs} if r.logprobs else {}),
            "usage": {
                "input_tokens": r.usage.input_tokens,
                "output_tokens": r.usage.output_tokens,
                "cached_input_tokens": r.usage.cached_input_tokens,
                "reasoning_tokens": r.usage.reasoning_tokens,
            },
        },
        model=result.endpoint.model_id,
        cost_usd=result.cost_usd,
        latency_ms=r.latency_ms,
        ttl_s=req.cache_ttl_s,
        variant=check.variant,
    )


def _cached_response(hit: Any) -> tuple[ChatResponse, Endpoint]:
    from routing.providers.base import Usage

    r = hit.response
    usage = Usage(**r.get("usage", {}))
    endpoint = catalog.find(hit.model) or Endpoint(*hit.model.partition("/")[::2], "simple", False, False, 0, 0, 0)
    response = ChatResponse(
        id=f"cache-{hit.entry_id}",
        provider=endpoint.provider,
        model=r.get("model", hit.model),
        content=r["content"],
        finish_reason=r.get("finish_reason") or "stop",
        usage=usage,
        tool_calls=r.get("tool_calls") or [],
        logprobs=r.get("logprobs"),
    )
    return response, endpoint


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """What routing reads: the whole conversation's text, system prompt included."""
    return "\n".join(message_text(m.get("content")) for m in messages if m.get("role") != "assistant")


def plan(req: CompletionRequest, embedding: Any = None) -> tuple[Decision, dict[str, catalog.Credential]]:
    """Route (or resolve the named model) and fetch credentials; sync, runs in a thread.
    `embedding`: the prompt's embedding when the cache lookup computed it (never embed twice)."""
    text = prompt_text(req.messages)
    constraints, needs = req.constraints, dict(req.extra)
    if has_images(req.messages):
        constraints = replace(constraints, requires_vision=True)  # an image needs a model that sees
        if has_images(req.messages, by_url_only=True):
            needs["image_url"] = True  # not every provider fetches images by URL (Gemini does not)
    if uses_tools(req.messages):
        needs["tools"] = True  # tool calls and results in the history: only a provider that speaks tools
    if req.model in ("", "auto"):
        decision = router.route(text, constraints, max_output_tokens=req.max_tokens, params=needs, embedding=embedding)
    else:
        endpoint = catalog.find(req.model)
        if endpoint is None:
            raise UnknownModel(f"unknown model {req.model!r}; GET /v1/models lists them, or use 'auto'")
        decision = router.explicit(text, endpoint, max_output_tokens=req.max_tokens, params=needs)
    decision.features.update(req.attributes)
    return decision, catalog.credentials.get()


def _cost(endpoint: Endpoint, response: ChatResponse) -> Decimal | None:
    price = prices.price_for(endpoint.span_model, timezone.now(), endpoint.provider)
    u = response.usage
    return cost_of(
        price, input_tokens=u.input_tokens, output_tokens=u.output_tokens, cached_input_tokens=u.cached_input_tokens
    ).usd


def _provider(endpoint: Endpoint, creds: dict[str, catalog.Credential]) -> Any:
    cred = creds.get(endpoint.provider)
    return provider_for(
        endpoint.provider, api_key=cred.api_key if cred else None, base_url=cred.base_url if cred else None
    )


def _chat_request(req: CompletionRequest, endpoint: Endpoint, stream: bool) -> ChatRequest:
    return ChatRequest(
        model=endpoint.model,
        messages=req.messages,
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_tokens,
        stop=req.stop,
        seed=req.seed,
        stream=stream,
        timeout_s=req.timeout_s,
        extra=req.extra,
    )


def _annotate_route(span: Any, decision: Decision) -> None:
    span.set_attributes(
        {
            "aios.route.complexity": decision.complexity,
            "aios.route.decided_by": decision.decided_by,
            "aios.route.model": decision.chosen.model_id,
            "aios.route.simulated": decision.chosen.simulated,
            "aios.route.alternatives": [e.model_id for e in decision.alternatives],
            "aios.route.estimated_cost_usd": str(decision.estimated_cost_usd),
            "aios.route.baseline_cost_usd": str(decision.baseline_cost_usd),
            "aios.route.reason": decision.reason,
        }
    )


def _record_llm(span: Any, endpoint: Endpoint, response: ChatResponse, req: CompletionRequest) -> None:
    u = response.usage
    span.set_tokens(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cached_input_tokens=u.cached_input_tokens,
        reasoning_tokens=u.reasoning_tokens,
        model=endpoint.span_model,
        provider=endpoint.provider,
    )
    span.set_attributes(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.response.model": response.model,
            "gen_ai.response.finish_reasons": [response.finish_reason],
        }
    )
    output: dict[str, Any] = {"role": "assistant", "content": response.content}
    if response.tool_calls:
        output["tool_calls"] = response.tool_calls
    span.set_messages(input_messages=req.messages, output_messages=[output])


async def _plan(req: CompletionRequest, embedding: Any = None) -> tuple[Decision, dict[str, catalog.Credential]]:
    """Plan on the loop when everything it needs is in memory (the common case: ~0.1 ms);
    otherwise (first request, the learned router's scoring) in a thread. A named model is
    never scored, so whether a learned router is loaded does not matter for it."""
    if req.model not in ("", "auto") or learned_router.cached() is False:
        try:
            return plan(req)
        except NotLoaded:
            pass
    return await sync_to_async(plan, thread_sensitive=False)(req, embedding)


async def _cost_of(endpoint: Endpoint, response: ChatResponse) -> Decimal | None:
    try:
        return _cost(endpoint, response)
    except NotLoaded:
        return await sync_to_async(_cost, thread_sensitive=False)(endpoint, response)


async def complete(req: CompletionRequest, caller: Caller | None = None) -> CompletionResult:
    """Route and answer one chat completion (not streamed). Raises NoModelAvailable,
    UnknownModel, or the last ProviderError when every model failed."""
    caller = caller or Caller()
    obs = get_observability()
    loop = asyncio.get_running_loop()
    with context.bound(username=caller.username or None, api_token=caller.api_token or None):
        async with obs.trace_span("gateway.chat_completions", kind="internal") as root:
            await policies.apply(req, caller, root)  # a live A/B test's split of "auto" (routing/policies.py)
            check = await _traced_lookup(req)
            if check.hit is not None:
                response, endpoint = _cached_response(check.hit)
                root.set_attribute("aios.model", endpoint.model_id)
                return CompletionResult(
                    response, endpoint, None, root.trace_id, Decimal(0), 0, check.result, check.hit.similarity
                )
            async with obs.trace_span("route", kind="route") as route_span:
                decision, creds = await _plan(req, check.embedding_of(prompt_text(req.messages)))
                _annotate_route(route_span, decision)
            decisions.record(decision, trace_id=root.trace_id, username=caller.username, api_token=caller.api_token)
            last_error: Exception | None = None
            for attempt, endpoint in enumerate([decision.chosen, *decision.alternatives], start=1):
                try:
                    response = await _call(obs, req, endpoint, creds)
                except (ProviderError, ProviderNotConfigured) as exc:
                    last_error = exc
                    if isinstance(exc, ProviderError) and exc.kind in _CALLER_ERRORS:
                        raise
                    continue
                cost = await _cost_of(endpoint, response)
                root.set_attribute("aios.model", endpoint.model_id)
                result = CompletionResult(
                    response, endpoint, decision, root.trace_id, cost, attempt, check.result, check.similarity
                )
                if check.store and response.finish_reason in STORABLE:
                    loop.run_in_executor(None, _store, check, req, result)  # answered first, stored after
                return result
            assert last_error is not None
            raise last_error


async def _call(obs: Any, req: CompletionRequest, endpoint: Endpoint, creds: dict[str, Any]) -> ChatResponse:
    span_model = endpoint.span_model
    async with obs.trace_span(f"chat {span_model}", kind="llm", model=span_model, provider=endpoint.provider) as llm:
        llm.set_attributes(req.attributes)
        provider = _provider(endpoint, creds)
        chat = _chat_request(req, endpoint, stream=False)
        response = await call_with_retries(lambda: provider.complete(chat), attempts=settings.AIOS_GATEWAY_RETRIES)
        _record_llm(llm, endpoint, response, req)
        return response


@dataclass
class StreamStart:
    endpoint: Endpoint
    decision: Decision | None  # None when answered from the cache
    trace_id: UUID
    cache: str = "bypass"  # hit | semantic-hit | miss | bypass
    similarity: float | None = None


@dataclass
class StreamEnd:
    response: ChatResponse
    cost_usd: Decimal | None


REPLAY_CHUNK_CHARS = 64  # a cached answer streams back in pieces of about this size


def _replay(text: str) -> list[str]:
    return [text[i : i + REPLAY_CHUNK_CHARS] for i in range(0, len(text), REPLAY_CHUNK_CHARS)] or [""]


async def complete_stream(
    req: CompletionRequest, caller: Caller | None = None
) -> AsyncIterator[StreamStart | StreamEvent | StreamEnd]:
    """Stream a completion: a StreamStart (model chosen), text StreamEvents, then a StreamEnd
    with usage and cost. Goes through the cache like `complete`: a hit is replayed as a stream,
    and a miss is stored once its stream has ended normally (finish_reason stop). Before the first
    text a failed call is retried, then the next model is tried; after it, the error ends the stream."""
    caller = caller or Caller()
    obs = get_observability()
    loop = asyncio.get_running_loop()
    with context.bound(username=caller.username or None, api_token=caller.api_token or None):
        async with obs.trace_span("gateway.chat_completions", kind="internal") as root:
            await policies.apply(req, caller, root)  # a live A/B test's split of "auto" (routing/policies.py)
            check = await _traced_lookup(req)
            if check.hit is not None:
                response, endpoint = _cached_response(check.hit)
                root.set_attribute("aios.model", endpoint.model_id)
                yield StreamStart(endpoint, None, root.trace_id, check.result, check.hit.similarity)
                for piece in _replay(response.content):
                    yield StreamEvent(text=piece)
                if response.logprobs:  # all at once: a replay's pieces are not the model's tokens
                    yield StreamEvent(logprobs=response.logprobs)
                if response.tool_calls:
                    yield StreamEvent(tool_calls=[{"index": i, **call} for i, call in enumerate(response.tool_calls)])
                yield StreamEnd(response, Decimal(0))
                return
            async with obs.trace_span("route", kind="route") as route_span:
                decision, creds = await _plan(req, check.embedding_of(prompt_text(req.messages)))
                _annotate_route(route_span, decision)
            decisions.record(decision, trace_id=root.trace_id, username=caller.username, api_token=caller.api_token)
            start = StreamStart(decision.chosen, decision, root.trace_id, check.result, check.similarity)
            last_error: Exception | None = None
            for endpoint in [decision.chosen, *decision.alternatives]:
                start.endpoint = endpoint
                sent: list[bool] = [False]
                try:
                    async for item in _stream_endpoint(obs, req, endpoint, creds, start, sent):
                        if isinstance(item, StreamEnd):
                            root.set_attribute("aios.model", endpoint.model_id)
                            if check.store and item.response.finish_reason in STORABLE:
                                result = CompletionResult(item.response, endpoint, decision, root.trace_id,
                                                          item.cost_usd, 1, check.result)  # fmt: skip
                                loop.run_in_executor(None, _store, check, req, result)  # streamed first, stored after
                        yield item
                    return
                except (ProviderError, ProviderNotConfigured) as exc:
                    if sent[0] or (isinstance(exc, ProviderError) and exc.kind in _CALLER_ERRORS):
                        raise
                    last_error = exc
            assert last_error is not None
            raise last_error


async def _stream_endpoint(
    obs: Any, req: CompletionRequest, endpoint: Endpoint, creds: dict[str, Any], start: StreamStart, sent: list[bool]
) -> AsyncIterator[StreamStart | StreamEvent | StreamEnd]:
    """One model's stream, retried (with backoff) while no text has gone out. `sent[0]` turns
    true with the first text: from then on an error can only end the stream."""
    span_model = endpoint.span_model
    attempts = max(1, settings.AIOS_GATEWAY_RETRIES)
    async with obs.trace_span(f"chat {span_model}", kind="llm", model=span_model, provider=endpoint.provider) as llm:
        llm.set_attributes(req.attributes)
        provider = _provider(endpoint, creds)
        yield start
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                async for event in provider.stream(_chat_request(req, endpoint, stream=True)):
                    if event.is_final:
                        _record_llm(llm, endpoint, event.response, req)
                        llm.set_attribute("gen_ai.server.time_to_first_token", event.response.first_token_ms)
                        llm.set_attribute("aios.stream_ms", round((time.monotonic() - started) * 1000, 1))
                        yield StreamEnd(event.response, await _cost_of(endpoint, event.response))
                        return
                    sent[0] = True
                    yield event
            except ProviderError as exc:
                if sent[0] or not exc.retryable or attempt == attempts - 1:
                    raise
                llm.set_attribute("aios.retries", attempt + 1)
                await asyncio.sleep(backoff_delay(attempt, exc.retry_after_s, base_s=0.2, cap_s=5.0, jitter=True))


__all__ = [
    "Caller",
    "CompletionRequest",
    "CompletionResult",
    "NoModelAvailable",
    "StreamEnd",
    "StreamStart",
    "UnknownModel",
    "complete",
    "complete_stream",
]
