"""The normalized chat model every provider speaks, its errors, retries, and the shared HTTP plumbing.

Providers translate `ChatRequest` into their wire format and their responses back into
`ChatResponse` / `StreamEvent`. Token usage follows OpenTelemetry's gen_ai conventions: input
counts include cached input, output counts include reasoning, so cost and dashboards never need
to know which provider answered.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import random
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from weakref import WeakKeyDictionary

import httpx
from httpx_aiohttp import HttpxAiohttpClient

from routing.providers.sse import SSEEvent, iter_sse

T = TypeVar("T")
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]
ErrorKind = Literal[
    "rate_limit", "overloaded", "server", "timeout", "connection", "auth", "bad_request", "not_found", "malformed"
]
RETRYABLE_KINDS: frozenset[str] = frozenset({"rate_limit", "overloaded", "server", "timeout", "connection"})
CONNECT_TIMEOUT_S = 5.0
DEFAULT_TIMEOUT_S = 60.0


# --- The normalized model ------------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class ChatRequest:
    """One chat completion. `model` is the provider's own id (no `provider/` prefix).

    `messages` are OpenAI-format dicts ({"role": "system"|"user"|"assistant", "content": str or
    a list of {"type": "text", "text": ...} parts}). `stream` records what the caller asked for;
    `Provider.complete` and `Provider.stream` each fix the mode themselves.
    """

    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S
    # Further OpenAI parameters in OpenAI's names and shapes (frequency_penalty, presence_penalty,
    # logit_bias, response_format, user). Callers route only to providers that honour them
    # (registry.unsupported_params); a provider that gets one it cannot honour raises bad_request.
    extra: dict[str, Any] = field(default_factory=dict)

    def stop_list(self) -> list[str] | None:
        if self.stop is None or isinstance(self.stop, list):
            return self.stop
        return [self.stop]


@dataclass(slots=True, kw_only=True)
class Usage:
    input_tokens: int = 0  # includes cached_input_tokens
    cached_input_tokens: int = 0
    output_tokens: int = 0  # includes reasoning_tokens
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True, kw_only=True)
class ChatResponse:
    id: str
    provider: str
    model: str  # as the provider reported it (often a dated version), else the requested id
    content: str
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)
    latency_ms: float = 0.0
    first_token_ms: float | None = None  # streaming only: time to the first text delta


@dataclass(slots=True, kw_only=True)
class StreamEvent:
    """A text delta, or (once, last) the final event carrying the assembled response."""

    text: str = ""
    response: ChatResponse | None = None

    @property
    def is_final(self) -> bool:
        return self.response is not None

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.response.finish_reason if self.response else None

    @property
    def usage(self) -> Usage | None:
        return self.response.usage if self.response else None


_DATA_URL_RE = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def image_url(part: Any) -> str | None:
    """The URL of an OpenAI image part ({"type": "image_url", "image_url": {"url": ...}}), else None."""
    if not isinstance(part, dict) or part.get("type") != "image_url":
        return None
    value = part.get("image_url")
    return value.get("url") if isinstance(value, dict) else value


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    match = _DATA_URL_RE.fullmatch(url)
    return (match["mime"], match["data"]) if match else None


def has_images(messages: list[dict[str, Any]], *, by_url_only: bool = False) -> bool:
    """Whether any message carries an image part (only ones given by http(s) URL with `by_url_only`)."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                url = image_url(part)
                if url is not None and not (by_url_only and data_url(url)):
                    return True
    return False


def message_text(content: Any) -> str:
    """The text of an OpenAI-format message content: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


# --- Errors --------------------------------------------------------------------------------

# Secrets that providers echo back in error messages (OpenAI masks all but the last four
# characters of a bad key, which is still more than we want in logs). The exact key is also
# scrubbed by the provider that knows it.
_KEY_PATTERNS = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{20,})")


def redact(text: str, secret: str | None = None) -> str:
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_PATTERNS.sub("[redacted]", text)


class ProviderError(Exception):
    """A failed provider call, classified so callers can decide to retry, fall back or give up."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        kind: ErrorKind,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.kind = kind
        self.status = status
        self.retryable = kind in RETRYABLE_KINDS if retryable is None else retryable
        self.retry_after_s = retry_after_s
        super().__init__(f"{provider} {kind}{f' ({status})' if status else ''}: {self.message}")

    def __repr__(self) -> str:
        return (
            f"ProviderError(provider={self.provider!r}, kind={self.kind!r}, status={self.status!r}, "
            f"retryable={self.retryable!r}, retry_after_s={self.retry_after_s!r})"
        )


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limit"
    if status in (503, 529):  # Anthropic's 529 and Gemini's 503 UNAVAILABLE both mean "model overloaded"
        return "overloaded"
    if status >= 500:
        return "server"
    return "bad_request"


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `retry-after` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(slots=True)
class ErrorDetail:
    """What a provider's error body adds to the status code: its message and any overrides."""

    message: str
    kind: ErrorKind | None = None
    retryable: bool | None = None
    retry_after_s: float | None = None


# --- Retries -------------------------------------------------------------------------------


def backoff_delay(attempt: int, retry_after_s: float | None, *, base_s: float, cap_s: float, jitter: bool) -> float:
    """Seconds before retry number `attempt` (0-based): the server's wish, else full-jitter backoff."""
    if retry_after_s is not None:
        return min(retry_after_s, cap_s)
    ceiling = min(cap_s, base_s * 2**attempt)
    return random.uniform(0, ceiling) if jitter else ceiling


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    base_s: float = 0.2,
    cap_s: float = 5.0,
    jitter: bool = True,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> T:
    """Await `fn()` up to `attempts` times, sleeping between retryable `ProviderError`s.

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads clients that
    failed together; a server's Retry-After wins over our schedule but is capped at `cap_s`.
    """
    for attempt in range(attempts):
        try:
            return await fn()
        except ProviderError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            await sleep(backoff_delay(attempt, exc.retry_after_s, base_s=base_s, cap_s=cap_s, jitter=jitter))
    raise ValueError("attempts must be at least 1")


# --- The provider interface ----------------------------------------------------------------


class Provider(Protocol):
    name: str

    async def complete(self, req: ChatRequest) -> ChatResponse: ...

    def stream(self, req: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


# --- Shared HTTP plumbing ------------------------------------------------------------------

_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)


@functools.lru_cache(maxsize=64)
def _timeout(timeout_s: float) -> httpx.Timeout:
    # Read/write/pool get the request's budget; connecting never needs more than a few seconds.
    return httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _refused(exc: BaseException) -> bool:
    """httpx-aiohttp maps a refused connection to ConnectTimeout: tell the two apart."""
    import aiohttp

    return isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(
        exc.__cause__, aiohttp.ServerTimeoutError
    )


class HttpProvider:
    """Pooled httpx client, JSON and SSE requests, and error translation for the HTTP providers.

    httpx pools are bound to the event loop that opened their connections, so there is one
    `AsyncClient` per loop (in practice: the gateway's loop and the sync wrapper's loop).
    """

    name: str = "http"

    def __init__(self, *, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._headers = {"content-type": "application/json", **self._auth_headers(api_key)}
        self._clients: WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"  # never the key

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def _describe_error(self, status: int, payload: Any) -> ErrorDetail:
        """Message and overrides from a provider's error JSON (`payload` is None if not JSON)."""
        raise NotImplementedError

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # httpx's API over aiohttp's connection pool: httpcore's pool scans every connection
            # for every request (getpeername per connection), which capped the gateway near
            # 200 requests/s at 32 connections; aiohttp's pool does not.
            client = HttpxAiohttpClient(headers=self._headers, limits=_LIMITS, timeout=_timeout(DEFAULT_TIMEOUT_S))
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    supported_extra: frozenset[str] = frozenset()

    @classmethod
    def unsupported(cls, extra: Mapping[str, Any]) -> list[str]:
        """The parameters of `ChatRequest.extra` this provider cannot honour (the router avoids it)."""
        return [name for name in extra if name not in cls.supported_extra]

    def check_extra(self, req: ChatRequest) -> None:
        """Refuse what we cannot honour rather than drop it: a dropped parameter changes the answer."""
        unsupported = self.unsupported(req.extra)
        if unsupported:
            raise self.error("bad_request", f"{unsupported[0]} is not supported by {self.name}")

    def error(self, kind: ErrorKind, message: str, **extra: Any) -> ProviderError:
        return ProviderError(redact(message, self._api_key), provider=self.name, kind=kind, **extra)

    def _error_from_response(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        if payload is None:  # an HTML page from a proxy or load balancer, say
            detail = ErrorDetail(response.text[:300] or response.reason_phrase)
        else:
            detail = self._describe_error(status, payload)
        retry_after = parse_retry_after(response.headers)
        # OpenAI and Anthropic say outright whether a retry can help; their SDKs obey, so do we.
        should_retry = response.headers.get("x-should-retry")
        retryable = {"true": True, "false": False}.get(should_retry or "", detail.retryable)
        return self.error(
            detail.kind or kind_for_status(status),
            detail.message,
            status=status,
            retryable=retryable,
            retry_after_s=retry_after if retry_after is not None else detail.retry_after_s,
        )

    async def _post_json(self, url: str, body: dict[str, Any], timeout_s: float) -> Any:
        client = self._client()
        try:
            # httpx's read timeout restarts with every chunk; this bounds the whole call.
            async with asyncio.timeout(timeout_s):
                response = await client.post(url, content=_dumps(body), timeout=_timeout(timeout_s))
        except (httpx.TimeoutException, TimeoutError) as exc:
            if _refused(exc):
                raise self.error("connection", f"cannot connect: {exc}") from exc
            raise self.error("timeout", f"no response within {timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise self.error("connection", f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise self._error_from_response(response)
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise self.error("malformed", "response body is not JSON", status=response.status_code) from exc

    async def _post_sse(self, url: str, body: dict[str, Any], timeout_s: float) -> AsyncIterator[SSEEvent]:
        """SSE events of a streamed response. `timeout_s` bounds each wait for data, not the whole
        stream: a long answer that keeps flowing is healthy."""
        client = self._client()
        try:
            async with client.stream("POST", url, content=_dumps(body), timeout=_timeout(timeout_s)) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._error_from_response(response)
                async for event in iter_sse(response.aiter_lines()):
                    yield event
        except httpx.TimeoutException as exc:
            if _refused(exc):
                raise self.error("connection", f"cannot connect: {exc}") from exc
            raise self.error("timeout", f"no data within {timeout_s:g} s") from exc
        except httpx.TransportError as exc:
            raise self.error("connection", f"{type(exc).__name__}: {exc}") from exc

    def parse_json_event(self, data: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise self.error("malformed", f"stream chunk is not JSON: {data[:100]!r}") from exc

    def truncated(self) -> ProviderError:
        # A stream that closes cleanly before its final event was cut short by something on the
        # way (proxy idle timeout, server restart): transient, so retryable like a dropped connection.
        return self.error("connection", "stream ended before its final event")


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class StreamState:
    """What a stream has said so far, assembled into the final `ChatResponse` at the end."""

    __slots__ = ("done", "finish_reason", "first_token_ms", "id", "model", "parts", "usage")

    def __init__(self, *, model: str) -> None:
        self.id = ""
        self.model = model
        self.parts: list[str] = []
        self.finish_reason: FinishReason | None = None
        self.usage = Usage()
        self.first_token_ms: float | None = None
        self.done = False

    def add_text(self, text: str, started: float) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = elapsed_ms(started)
        self.parts.append(text)

    def response(self, provider: str, started: float) -> ChatResponse:
        return ChatResponse(
            id=self.id,
            provider=provider,
            model=self.model,
            content="".join(self.parts),
            finish_reason=self.finish_reason or "stop",
            usage=self.usage,
            latency_ms=elapsed_ms(started),
            first_token_ms=self.first_token_ms,
        )


# --- Sync convenience ----------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One long-lived loop in a daemon thread, so sync callers share pooled connections too."""
    global _loop, _loop_thread
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            _loop_thread = threading.Thread(target=_loop.run_forever, name="llm-providers", daemon=True)
            _loop_thread.start()
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a provider coroutine from sync code (Django views, Celery tasks) and wait for it."""
    loop = _background_loop()
    if threading.current_thread() is _loop_thread:
        coro.close()
        raise RuntimeError("run_sync called from the providers' own loop: await the coroutine instead")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def complete_sync(provider: Provider, req: ChatRequest) -> ChatResponse:
    return run_sync(provider.complete(req))
