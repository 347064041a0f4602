"""Who and what the current unit of work is for: request id, user, client IP, trace id.

Context variables, so asyncio tasks inherit them; the request middleware and the Celery
signal handlers set them, and the JSON log formatter and the audit log read them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class WorkContext:
    request_id: str | None = None
    user_id: int | None = None
    username: str | None = None
    api_token: str | None = None  # the token's name, never its secret
    ip: str | None = None
    trace_id: str | None = None


_current: ContextVar[WorkContext] = ContextVar("aios_work_context", default=WorkContext())  # noqa: B039 - frozen, so immutable


def current() -> WorkContext:
    return _current.get()


def update(**changes: object) -> None:
    """Change fields of the current context in place (for this task / request only)."""
    _current.set(replace(_current.get(), **changes))


def reset(**fields: object) -> None:
    """Start a fresh context for a new unit of work (a Celery task): nothing carries over."""
    _current.set(WorkContext(**fields))  # type: ignore[arg-type]


@contextmanager
def bound(**fields: object) -> Iterator[WorkContext]:
    token = _current.set(replace(_current.get(), **fields))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def bind_trace(trace_id: str | None) -> Token[WorkContext] | None:
    """Stamp `trace_id` on the current context (the tracing layer calls this when a span or a
    remote parent becomes current). Returns a token for `unbind`, or None when nothing changed
    (a child span of the same trace costs no context copy)."""
    ctx = _current.get()
    if ctx.trace_id == trace_id:
        return None
    return _current.set(replace(ctx, trace_id=trace_id))


def unbind(token: Token[WorkContext] | None) -> None:
    """Undo `bind_trace`. A span exited in another context (a generator closed elsewhere) has
    nothing to undo here."""
    if token is not None:
        try:
            _current.reset(token)
        except ValueError:
            pass
