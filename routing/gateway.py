"""The OpenAI-compatible gateway: `POST /v1/chat/completions` and `GET /v1/models`.

A plain ASGI app in front of Django (composed in aios_site/asgi.py): the gateway is the one
path where a few milliseconds matter, and Django's middleware stack, run through sync adapters
under ASGI, costs more than the whole routing decision. It speaks OpenAI's wire format
(requests, responses, SSE streams, error objects) so any OpenAI SDK works against it.

Authentication is injected (`authenticate(raw_token) -> GatewayCaller | None`), so routing
does not import aios_site, where tokens live.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from observability.tracing import random_hex
from routing import catalog, completion
from routing.chat_schema import BodyError, RoutingConstraints, parse_body
from routing.completion import Caller, CompletionRequest, StreamEnd, StreamStart
from routing.providers.base import ChatResponse, ProviderError, StreamEvent
from routing.router import Constraints, NoModelAvailable, UnsupportedParameter

log = logging.getLogger(__name__)

MAX_BODY = 10 * 1024 * 1024
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class GatewayCaller:
    username: str
    token_name: str
    scopes: tuple[str, ...]


class GatewayError(Exception):
    """An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# --- request parsing --------------------------------------------------------------------------------


def parse_request(body: Any) -> tuple[CompletionRequest, bool, bool]:
    """(request, stream?, include usage in the stream?) or GatewayError naming the field."""
    try:
        parsed = parse_body(body)
    except BodyError as exc:
        raise GatewayError(400, str(exc), param=exc.param) from exc
    c = parsed.aios_constraints or RoutingConstraints()
    constraints = Constraints(
        max_cost_usd=c.max_cost_usd,
        max_latency_ms=c.max_latency_ms,
        requires_vision=c.requires_vision,
        min_context_tokens=c.min_context_tokens,
    )
    req = CompletionRequest(
        # As sent (validated): every field of a message goes upstream and into the cache key.
        messages=body["messages"],
        model=parsed.model,
        temperature=parsed.temperature,
        top_p=parsed.top_p,
        max_tokens=parsed.max_completion_tokens or parsed.max_tokens,
        stop=parsed.stop,
        seed=parsed.seed,
        constraints=constraints,
        extra=parsed.extras(),
    )
    include_usage = bool(parsed.stream_options and parsed.stream_options.include_usage)
    return req, parsed.stream, include_usage


# --- response shapes -------------------------------------------------------------------------------


def _usage(response: ChatResponse) -> dict[str, Any]:
    u = response.usage
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _message(response: ChatResponse) -> dict[str, Any]:
    if not response.tool_calls:
        return {"role": "assistant", "content": response.content}
    # As OpenAI answers a call: content null unless the model also wrote text.
    return {"role": "assistant", "content": response.content or None, "tool_calls": response.tool_calls}


def completion_body(result: completion.CompletionResult, request_id: str) -> dict[str, Any]:
    r = result.response
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.endpoint.model_id,
        "choices": [
            {
                "index": 0,
                "message": _message(r),
                "logprobs": r.logprobs,
                "finish_reason": r.finish_reason,
            }
        ],
        "usage": _usage(r),
        "system_fingerprint": None,
    }


def _chunk(
    request_id: str, model: str, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }


def _headers(pairs: dict[str, str], content_type: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), *((k.encode(), v.encode()) for k, v in pairs.items())]


def _cache_control(value: str) -> str:
    """`no-store` (bypass the cache) wins over `no-cache` (refresh: skip the lookup, store)."""
    directives = {d.strip().lower() for d in value.split(",")}
    return "no-store" if "no-store" in directives else "no-cache" if "no-cache" in directives else ""


def _usd(value: Any) -> str:
    return "unknown" if value is None else format(value.normalize(), "f")


# --- the ASGI app ------------------------------------------------------------------------------------


class GatewayApp:
    """Serves /v1/chat/completions and /v1/models; hands every other request to `app`."""

    PATHS = ("/v1/chat/completions", "/v1/models")

    def __init__(self, app: Any, *, authenticate: Callable[[str], Awaitable[GatewayCaller | None]]) -> None:
        self.app = app
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") not in self.PATHS:
            await self.app(scope, receive, send)
            return
        request_id = f"chatcmpl-{random_hex(24)}"
        try:
            caller = await self._caller(scope)
            path = scope["path"].rstrip("/")
            if path == "/v1/models":
                if scope["method"] != "GET":
                    raise GatewayError(405, "use GET", code="method_not_allowed")
                await self._json(send, 200, await self._models())
                return
            if scope["method"] != "POST":
                raise GatewayError(405, "use POST", code="method_not_allowed")
            body = await self._body(receive)
            req, stream, include_usage = parse_request(body)
            call = Caller(username=caller.username, api_token=caller.token_name)
            headers_in = dict(scope.get("headers") or [])
            req.namespace = f"token:{caller.username}:{caller.token_name}"
            req.cache_control = _cache_control(headers_in.get(b"cache-control", b"").decode("latin-1"))
            ttl = headers_in.get(b"x-aios-cache-ttl", b"").decode("latin-1").strip()
            if ttl:
                if not ttl.isdigit() or not 0 < int(ttl) <= 30 * 86400:
                    raise GatewayError(400, "x-aios-cache-ttl must be seconds, 1 to 2592000", param="x-aios-cache-ttl")
                req.cache_ttl_s = int(ttl)
            mode = headers_in.get(b"x-aios-cache-mode", b"").decode("latin-1").strip().lower()
            if mode:
                if mode not in ("deterministic", "all", "off"):
                    raise GatewayError(
                        400, "x-aios-cache-mode must be deterministic, all or off", param="x-aios-cache-mode"
                    )
                req.cache_mode = mode
            if stream:
                await self._stream(send, req, call, request_id, include_usage)
            else:
                result = await completion.complete(req, call)
                headers = {
                    "x-aios-model": result.endpoint.model_id,
                    "x-aios-trace-id": result.trace_id.hex,
                    "x-aios-cost-usd": _usd(result.cost_usd),
                    "x-request-id": request_id,
                    "x-aios-cache": result.cache,
                }
                if result.cache == "semantic-hit" and result.similarity is not None:
                    headers["x-aios-cache-similarity"] = f"{result.similarity:.4f}"
                if result.endpoint.simulated:
                    headers["x-aios-simulated"] = "true"
                await self._json(send, 200, completion_body(result, request_id), headers)
        except GatewayError as exc:
            await self._json(send, exc.status, exc.body())
        except UnsupportedParameter as exc:
            error = GatewayError(400, str(exc), param=exc.param, code="unsupported_parameter")
            await self._json(send, 400, error.body())
        except (NoModelAvailable, completion.UnknownModel) as exc:
            status, code = (404, "model_not_found") if isinstance(exc, completion.UnknownModel) else (422, "no_model")
            await self._json(send, status, GatewayError(status, str(exc), param="model", code=code).body())
        except ProviderError as exc:
            status = exc.status if exc.kind in ("bad_request",) and exc.status else 502
            error = GatewayError(
                status, f"upstream {exc.provider} failed: {exc}", type_="upstream_error", code=exc.kind
            )
            await self._json(send, status, error.body())
        except Exception:
            log.exception("gateway error")
            await self._json(send, 500, GatewayError(500, "internal error", type_="server_error").body())

    async def _caller(self, scope: Scope) -> GatewayCaller:
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if not header.lower().startswith("bearer "):
            raise GatewayError(
                401,
                "send an API token: Authorization: Bearer <token>",
                type_="authentication_error",
                code="missing_token",
            )
        caller = await self.authenticate(header[7:].strip())
        if caller is None:
            raise GatewayError(
                401, "the API token is unknown, expired or revoked", type_="authentication_error", code="invalid_token"
            )
        if "gateway" not in caller.scopes:
            raise GatewayError(
                403, "this token lacks the 'gateway' scope", type_="permission_error", code="insufficient_scope"
            )
        return caller

    async def _body(self, receive: Receive) -> Any:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise GatewayError(413, f"the body is larger than {MAX_BODY} bytes", code="too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        try:
            return json.loads(b"".join(chunks) or b"null")
        except ValueError as exc:
            raise GatewayError(400, f"the body is not JSON: {exc}") from exc

    async def _models(self) -> dict[str, Any]:
        from asgiref.sync import sync_to_async

        available = await sync_to_async(catalog.available_endpoints, thread_sensitive=False)()
        data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "aios-router"}]
        data += [
            {"id": e.model_id, "object": "model", "created": 0, "owned_by": e.provider, "aios_tier": e.tier}
            for e in available
        ]
        return {"object": "list", "data": data}

    async def _json(self, send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        pairs = {**(headers or {}), "content-length": str(len(payload))}
        await send({"type": "http.response.start", "status": status, "headers": _headers(pairs, b"application/json")})
        await send({"type": "http.response.body", "body": payload})

    async def _stream(
        self, send: Send, req: CompletionRequest, caller: Caller, request_id: str, include_usage: bool
    ) -> None:
        started = False
        start: StreamStart | None = None

        async def open_stream() -> None:
            nonlocal started
            assert start is not None
            headers = {
                "x-aios-model": start.endpoint.model_id,
                "x-aios-trace-id": start.trace_id.hex,
                "x-request-id": request_id,
                "cache-control": "no-cache",
                "x-aios-cache": start.cache,
            }
            if start.cache == "semantic-hit" and start.similarity is not None:
                headers["x-aios-cache-similarity"] = f"{start.similarity:.4f}"
            if start.endpoint.simulated:
                headers["x-aios-simulated"] = "true"
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": _headers(headers, b"text/event-stream; charset=utf-8"),
                }
            )
            await self._sse(send, _chunk(request_id, start.endpoint.model_id, {"role": "assistant", "content": ""}))
            started = True

        try:
            async for item in completion.complete_stream(req, caller):
                if isinstance(item, StreamStart):
                    start = item
                    continue
                if not started:
                    await open_stream()
                assert start is not None
                model = start.endpoint.model_id
                if isinstance(item, StreamEvent) and (item.text or item.logprobs):
                    await self._sse(send, _chunk(request_id, model, {"content": item.text}, None, item.logprobs))
                if isinstance(item, StreamEvent) and item.tool_calls:
                    await self._sse(send, _chunk(request_id, model, {"tool_calls": item.tool_calls}))
                elif isinstance(item, StreamEnd):
                    await self._sse(send, _chunk(request_id, model, {}, item.response.finish_reason))
                    if include_usage:
                        final = {**_chunk(request_id, model, {}), "choices": [], "usage": _usage(item.response)}
                        final["aios"] = {"cost_usd": _usd(item.cost_usd), "trace_id": start.trace_id.hex}
                        await self._sse(send, final)
        except Exception as exc:
            if not started:
                raise
            message = str(exc) if isinstance(exc, ProviderError) else "internal error"
            await self._sse(send, GatewayError(502, message, type_="upstream_error").body())
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    @staticmethod
    async def _sse(send: Send, data: dict[str, Any]) -> None:
        await send(
            {"type": "http.response.body", "body": b"data: " + json.dumps(data).encode() + b"\n\n", "more_body": True}
        )
