"""The public Python API of observability (see `observability.get_observability`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO, Any, TypeVar

from observability import tracing
from observability.writer import get_writer

F = TypeVar("F", bound=Callable[..., Any])


class Observability:
    """Facade over tracing, the span writer, metrics and export. Stateless: one per process."""

    def trace_span(
        self,
        name: str,
        *,
        kind: str = "internal",
        agent_name: str = "",
        attributes: dict[str, Any] | None = None,
        model: str | None = None,
        provider: str | None = None,
    ) -> tracing.Span:
        """A span usable as `with` or `async with`; nests under the current span."""
        span = tracing.Span(get_writer(), name, kind, agent_name or "", attributes)
        if model is not None:
            span.set_model(model, provider)
        elif provider is not None:
            span.provider = provider
        return span

    def current_span(self) -> tracing.Span | tracing.RemoteParent | None:
        return tracing.current_span()

    def current_traceparent(self) -> str | None:
        span = tracing.current_span()
        return span.traceparent if span is not None else None

    def wrap(self, fn: F) -> F:
        """Bind `fn` to the current context, so spans it opens in a thread nest under ours."""
        return tracing.wrap(fn)

    def flush(self, timeout: float = 10.0) -> bool:
        return get_writer().flush(timeout)

    def get_metrics_summary(
        self,
        window: timedelta = timedelta(hours=1),
        agent: str | None = None,
        model: str | None = None,
        *,
        kind: str | None = None,
        exact: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        from observability.selectors import metrics_summary

        return metrics_summary(window=window, agent=agent, model=model, kind=kind, exact=exact, now=now)

    def export_traces(
        self, stream: IO[str], since: datetime | None = None, until: datetime | None = None, fmt: str = "ndjson"
    ) -> int:
        from observability.exporting import export_traces

        return export_traces(stream, since=since, until=until, fmt=fmt)


_instance = Observability()


def get_observability() -> Observability:
    return _instance
