"""The tracing API: spans as context managers, nested through context variables.

    obs = get_observability()
    with obs.trace_span("agent.action", agent_name="security", kind="action") as span:
        span.set_tokens(input_tokens=1500, output_tokens=500, model="gpt-4o-mini", provider="openai")

A span is cheap to open and close (a few microseconds): at its end it becomes one tuple in
the process's bounded buffer (observability.writer), and a background thread COPYs batches
into Postgres. Parents are found through a context variable, which asyncio tasks inherit;
threads get it through `obs.wrap(fn)`, Celery tasks through a W3C `traceparent` header.
"""

from __future__ import annotations

import contextvars
import os
import random
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from aios_core import context as work_context
from observability import content

F = TypeVar("F", bound=Callable[..., Any])
# Ids need to be unique, not secret: a PRNG seeded from the OS once per process (and again in
# a forked child). os.urandom per id cost ~130 us on this VM, most of a gateway request's budget.
_rand = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rand.seed(os.urandom(32)))
# One clock for every span of the process: wall time anchored once, advanced by the monotonic
# counter. Reading datetime.now() and perf_counter() separately per span let a thread switch
# between the two calls put a child's end after its parent's.
_ANCHOR_WALL = datetime.now(UTC)
_ANCHOR_NS = time.perf_counter_ns()


def _wall(ns: int) -> datetime:
    return _ANCHOR_WALL + timedelta(microseconds=(ns - _ANCHOR_NS) / 1000)


_MASK64 = 0xFFFFFFFFFFFFFFFF
MAX_ERROR_MESSAGE = 4000
MAX_STACK = 16000


def random_hex(n: int) -> str:
    """`n` random hex digits (request ids and the like: unique, not secret)."""
    return f"{_rand.getrandbits(4 * n):0{n}x}"


def new_trace_id() -> UUID:
    return UUID(int=_rand.getrandbits(128) or 1)


def new_span_id() -> int:
    """A random 64-bit id as Postgres' signed bigint (0 is invalid in OpenTelemetry)."""
    value = _rand.getrandbits(64) or 1
    return value - (1 << 64) if value >= (1 << 63) else value


def span_id_hex(span_id: int) -> str:
    return (span_id & _MASK64).to_bytes(8, "big").hex()


def span_id_from_hex(text: str) -> int:
    value = int(text, 16)
    return value - (1 << 64) if value >= (1 << 63) else value


class RemoteParent:
    """A parent span in another process (from a `traceparent` header)."""

    __slots__ = ("span_id", "trace_id")

    def __init__(self, trace_id: UUID, span_id: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id.hex}-{span_id_hex(self.span_id)}-01"


_current: contextvars.ContextVar[Span | RemoteParent | None] = contextvars.ContextVar("aios_span", default=None)


def parse_traceparent(header: str | None) -> RemoteParent | None:
    """W3C trace context: `00-<32 hex trace id>-<16 hex span id>-<flags>`."""
    if not header:
        return None
    parts = header.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        trace_int, span_int = int(parts[1], 16), int(parts[2], 16)
    except ValueError:
        return None
    if not trace_int or not span_int:
        return None
    return RemoteParent(UUID(int=trace_int), span_id_from_hex(parts[2]))


class Span:
    """An open span. Use it through `Observability.trace_span`, not directly."""

    __slots__ = (
        "_ctx_token",
        "_ended",
        "_start_ns",
        "_token",
        "_writer",
        "agent",
        "api_token",
        "attributes",
        "cached_input_tokens",
        "error_message",
        "error_stack",
        "error_type",
        "input_tokens",
        "kind",
        "model",
        "name",
        "output_tokens",
        "parent_span_id",
        "provider",
        "reasoning_tokens",
        "span_id",
        "started_at",
        "status",
        "trace_id",
        "username",
    )  # fmt: skip

    def __init__(self, writer: Any, name: str, kind: str, agent: str, attributes: dict[str, Any] | None) -> None:
        parent = _current.get()
        self.trace_id = parent.trace_id if parent else new_trace_id()
        self.parent_span_id = parent.span_id if parent else None
        self.span_id = new_span_id()
        if not agent and isinstance(parent, Span):
            agent = parent.agent  # children inherit the agent they work for
        self.name, self.kind, self.agent = name[:200], kind, agent[:100]
        self.attributes: dict[str, Any] = dict(attributes) if attributes else {}
        self.provider = self.model = ""
        self.input_tokens = self.output_tokens = self.cached_input_tokens = self.reasoning_tokens = 0
        self.status = "ok"
        self.error_type = self.error_message = self.error_stack = ""
        ctx = work_context.current()
        self.username, self.api_token = ctx.username or "", ctx.api_token or ""
        self._start_ns = time.perf_counter_ns()
        self.started_at = _wall(self._start_ns)
        self._ended = False
        self._writer = writer
        self._token: contextvars.Token[Any] | None = None
        self._ctx_token: contextvars.Token[Any] | None = None

    # --- what callers record ------------------------------------------------------------------
    def set_tokens(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        model: str | None = None,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        provider: str | None = None,
    ) -> None:
        """Token usage of an LLM call. `input_tokens` includes `cached_input_tokens`, and
        `output_tokens` includes `reasoning_tokens` (OpenTelemetry's convention)."""
        self.input_tokens, self.output_tokens = int(input_tokens), int(output_tokens)
        self.cached_input_tokens, self.reasoning_tokens = int(cached_input_tokens), int(reasoning_tokens)
        if model is not None:
            self.model = model[:150]
        if provider is not None:
            self.provider = provider[:50]

    def set_model(self, model: str, provider: str | None = None) -> None:
        self.model = model[:150]
        if provider is not None:
            self.provider = provider[:50]

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, values: dict[str, Any]) -> None:
        self.attributes.update(values)

    def set_messages(self, *, input_messages: Any = None, output_messages: Any = None) -> None:
        """Prompt and response content, captured only if the setting allows, capped, redacted."""
        content.capture(self.attributes, input_messages=input_messages, output_messages=output_messages)

    def record_error(self, exc: BaseException) -> None:
        self.status = "error"
        self.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")[:200]
        self.error_message = str(exc)[:MAX_ERROR_MESSAGE]
        self.error_stack = "".join(traceback.format_exception(exc))[-MAX_STACK:]

    def set_error(self, error_type: str, message: str = "") -> None:
        """Mark failed without an exception (e.g. a handler returned a failure result)."""
        self.status = "error"
        self.error_type, self.error_message = error_type[:200], message[:MAX_ERROR_MESSAGE]

    def start_at(self, when: datetime) -> None:
        """Move the start back to `when`: for a span that measures a wait begun earlier (a
        request waiting for a human decision). Its latency then runs from `when` to its end."""
        self._start_ns -= int((self.started_at - when).total_seconds() * 1e9)
        self.started_at = when

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id.hex}-{span_id_hex(self.span_id)}-01"

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter_ns() - self._start_ns) / 1e6

    # --- lifecycle ------------------------------------------------------------------------------
    def _enter(self) -> Span:
        self._token = _current.set(self)
        # Log lines written inside the span carry its trace id (aios_core.logging reads the
        # work context; aios_core must not import us, so we stamp it there).
        self._ctx_token = work_context.bind_trace(self.trace_id.hex)
        return self

    def _exit(self, exc: BaseException | None) -> None:
        if exc is not None and self.status != "error":
            self.record_error(exc)
        work_context.unbind(self._ctx_token)
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:  # exited in another context (a generator closed elsewhere)
                _current.set(None)
        self.end()

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        end_ns = time.perf_counter_ns()
        latency_ms = (end_ns - self._start_ns) / 1e6
        ended_at = _wall(end_ns)
        self._writer.add_span(self, ended_at, latency_ms)

    def __enter__(self) -> Span:
        return self._enter()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._exit(exc)

    async def __aenter__(self) -> Span:
        return self._enter()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._exit(exc)


def current_span() -> Span | RemoteParent | None:
    return _current.get()


class Attached:
    """What `attach_remote_parent` changed, for `detach` to undo."""

    __slots__ = ("context_token", "span_token")

    def __init__(self, span_token: contextvars.Token[Any], context_token: contextvars.Token[Any] | None) -> None:
        self.span_token, self.context_token = span_token, context_token


def attach_remote_parent(traceparent: str | None) -> Attached | None:
    """Make the parent named by a `traceparent` header current (and stamp its trace id on the
    work context, for the logs)."""
    parent = parse_traceparent(traceparent)
    if parent is None:
        return None
    span_token = _current.set(parent)
    return Attached(span_token, work_context.bind_trace(parent.trace_id.hex))


def detach(attached: Attached | None) -> None:
    if attached is not None:
        work_context.unbind(attached.context_token)
        try:
            _current.reset(attached.span_token)
        except ValueError:
            _current.set(None)


def wrap(fn: F) -> F:
    """`fn` bound to a copy of the current context: spans opened in a thread nest under ours."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return run  # type: ignore[return-value]
