"""The normalized chat model every provider speaks, its errors, retries, and the shared HTTP plumbing.

Providers translate `ChatRequest` into their wire format and their responses back into
`ChatResponse` / `StreamEvent`. Token usage follows OpenTelemetry's gen_ai conventions: input
counts include cached input, output counts include reasoning, so cost and dashboards never need
to know which provider answered.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import functools
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from weakref import WeakKeyDictionary

import aiohttp
import certifi

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
    # The functions the model asked to call, in OpenAI's shape:
    # [{"id", "type": "function", "function": {"name", "arguments": JSON text}}]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # OpenAI's `choices[0].logprobs` ({"content": [{"token", "logprob", "bytes", "top_logprobs"}]}),
    # when the request asked for logprobs.
    logprobs: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class StreamEvent:
    """A text delta, tool-call deltas, or (once, last) the final event with the assembled response.

    `tool_calls` are OpenAI's stream deltas ({"index", and on a call's first delta "id", "type",
    "function.name"; then pieces of "function.arguments"}), passed on to the client as they come."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: dict[str, Any] | None = None  # this delta's, in OpenAI's shape
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


def uses_tools(messages: list[dict[str, Any]]) -> bool:
    """Whether a conversation carries tool calls or tool results (only a provider that speaks
    tools can read it)."""
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


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

MAX_CONNECTIONS = 256  # per provider and event loop
KEEPALIVE_S = 30.0


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR when set (as httpx and the official SDKs
    do); built once: loading the roots costs ~30 ms."""
    context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())
    if os.environ.get("SSL_CERT_DIR"):
        context.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
    return context


@functools.lru_cache(maxsize=64)
def _timeout(timeout_s: float) -> aiohttp.ClientTimeout:
    # Each read gets the request's budget (a stream that keeps flowing is healthy); connecting
    # never needs more than a few seconds. `_post_json` also bounds the whole call.
    return aiohttp.ClientTimeout(total=None, sock_read=timeout_s, sock_connect=min(CONNECT_TIMEOUT_S, timeout_s))


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body's lines without their endings (LF, CRLF or CR), whatever their length: aiohttp's
    own line reader refuses lines over 128 KB, and one SSE chunk may carry a whole answer."""
    pending = ""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    async for chunk in response.content.iter_any():
        pending += decoder.decode(chunk)
        *complete, pending = _LINE_BREAK.split(pending)
        for line in complete:
            yield line
    pending += decoder.decode(b"", final=True)
    if pending:
        yield pending.removesuffix("\r")


_LINE_BREAK = re.compile(r"\r\n|\r(?!\Z)|\n")  # a CR at the very end may be half of a CRLF: wait


def _env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy HTTPS_PROXY / HTTP_PROXY / ALL_PROXY name for `url`, unless NO_PROXY exempts it."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None
    return str(proxy), auth


@dataclass(slots=True, frozen=True)
class _ErrorResponse:
    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes


class HttpProvider:
    """Pooled HTTP client, JSON and SSE requests, and error translation for the HTTP providers.

    aiohttp directly: the gateway's provider call is its hottest path, and httpx's request and
    response models (over aiohttp's pool, since httpcore's pool scans every connection per
    request) cost about a third of a proxied request's CPU. aiohttp sessions are bound to the
    event loop that opened them, so there is one per loop (in practice: the gateway's loop and
    the sync wrapper's loop).
    """

    name: str = "http"

    def __init__(self, *, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._headers = {"content-type": "application/json", **self._auth_headers(api_key)}
        self._sessions: WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = WeakKeyDictionary()
        # HTTPS_PROXY / NO_PROXY, honoured as httpx and the official SDKs do; read once here:
        # aiohttp's trust_env reads them in a thread on every request.
        self._proxy, self._proxy_auth = _env_proxy(self.base_url)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.base_url}>"  # never the key

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        raise NotImplementedError

    def _describe_error(self, status: int, payload: Any) -> ErrorDetail:
        """Message and overrides from a provider's error JSON (`payload` is None if not JSON)."""
        raise NotImplementedError

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S, ssl=_ssl_context())
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                cookie_jar=aiohttp.DummyCookieJar(),  # an API client keeps no cookies
            )
            self._sessions[loop] = session
        return session

    async def aclose(self) -> None:
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

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

    def _error_from_response(self, response: _ErrorResponse) -> ProviderError:
        status = response.status
        try:
            payload = json.loads(response.content)
        except ValueError:
            payload = None
        if payload is None:  # an HTML page from a proxy or load balancer, say
            text = response.content.decode("utf-8", "replace")
            detail = ErrorDetail(text[:300] or response.reason)
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

    def call_arguments(self, call: dict[str, Any]) -> Any:
        """An OpenAI tool call's arguments (JSON text) parsed, as Anthropic and Gemini take them;
        a 400 if the caller sent back arguments that are not JSON."""
        try:
            return json.loads((call.get("function") or {}).get("arguments") or "{}")
        except ValueError as exc:
            raise self.error("bad_request", f"tool call {call.get('id')!r} has arguments that are not JSON") from exc

    async def _failed_response(self, response: aiohttp.ClientResponse) -> ProviderError:
        content = await response.read()
        return self._error_from_response(
            _ErrorResponse(response.status, response.reason or "", response.headers, content)
        )

    def _transport_error(self, exc: BaseException, timeout_s: float, waiting_for: str) -> ProviderError:
        if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(exc, aiohttp.ServerTimeoutError):
            return self.error("connection", f"cannot connect: {exc}")
        if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
            return self.error("timeout", f"no {waiting_for} within {timeout_s:g} s")
        return self.error("connection", f"{type(exc).__name__}: {exc}")

    def _post(self, session: aiohttp.ClientSession, url: str, body: dict[str, Any], timeout_s: float) -> Any:
        return session.post(
            url,
            data=_dumps(body),
            timeout=_timeout(timeout_s),
            allow_redirects=False,
            proxy=self._proxy,
            proxy_auth=self._proxy_auth,
        )

    async def _post_json(self, url: str, body: dict[str, Any], timeout_s: float) -> Any:
        session = self._session()
        try:
            async with asyncio.timeout(timeout_s):  # the whole call, not each read
                async with self._post(session, url, body, timeout_s) as response:
                    if response.status >= 400:
                        raise await self._failed_response(response)
                    content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, timeout_s, "response") from exc
        try:
            return json.loads(content)
        except ValueError as exc:
            raise self.error("malformed", "response body is not JSON", status=response.status) from exc

    async def _post_sse(self, url: str, body: dict[str, Any], timeout_s: float) -> AsyncIterator[SSEEvent]:
        """SSE events of a streamed response. `timeout_s` bounds each wait for data, not the whole
        stream: a long answer that keeps flowing is healthy."""
        session = self._session()
        try:
            async with self._post(session, url, body, timeout_s) as response:
                if response.status >= 400:
                    raise await self._failed_response(response)
                async for event in iter_sse(_lines(response)):
                    yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, timeout_s, "data") from exc

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

    __slots__ = ("block_calls", "done", "finish_reason", "first_token_ms", "id", "logprobs", "model", "parts",
                 "tool_calls", "usage")  # fmt: skip

    def __init__(self, *, model: str) -> None:
        self.id = ""
        self.model = model
        self.parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}  # by the deltas' index
        self.block_calls: dict[int, int] = {}  # a provider's content block index -> tool call index
        self.logprobs: dict[str, list[Any]] | None = None  # the deltas' logprobs, concatenated
        self.finish_reason: FinishReason | None = None
        self.usage = Usage()
        self.first_token_ms: float | None = None
        self.done = False

    def add_text(self, text: str, started: float) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = elapsed_ms(started)
        self.parts.append(text)

    def add_tool_deltas(self, deltas: list[dict[str, Any]], started: float) -> None:
        """Fold OpenAI-shaped tool-call deltas into whole calls (arguments arrive in pieces)."""
        if self.first_token_ms is None:
            self.first_token_ms = elapsed_ms(started)
        for delta in deltas:
            call = self.tool_calls.setdefault(
                int(delta.get("index") or 0), {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            call["id"] = delta.get("id") or call["id"]
            call["type"] = delta.get("type") or call["type"]
            function = delta.get("function") or {}
            # The name comes whole in a call's first delta (some servers repeat it later): keep the first.
            call["function"]["name"] = call["function"]["name"] or function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
            if delta.get("extra_content"):  # a provider's own data about the call (Gemini's thought signature)
                call["extra_content"] = delta["extra_content"]

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
            tool_calls=[self.tool_calls[index] for index in sorted(self.tool_calls)],
            logprobs=None if self.logprobs is None else {
                "content": self.logprobs.get("content", []), "refusal": self.logprobs.get("refusal") or None},
        )  # fmt: skip

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        if self.logprobs is None:
            self.logprobs = {}
        for key, items in logprobs.items():
            if isinstance(items, list):
                self.logprobs.setdefault(key, []).extend(items)


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
