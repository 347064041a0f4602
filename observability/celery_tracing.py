"""Trace context across Celery: the publisher puts a W3C `traceparent` header on the task
message; the worker attaches it as the remote parent of the spans the task opens. Spans a
worker child buffered are flushed when the child shuts down."""

from __future__ import annotations

from typing import Any

from celery import signals

from observability import tracing


@signals.before_task_publish.connect
def _inject_traceparent(headers: dict[str, Any] | None = None, **_: Any) -> None:
    span = tracing.current_span()
    if span is not None and headers is not None and "traceparent" not in headers:
        headers["traceparent"] = span.traceparent


def _traceparent_of(task: Any) -> str | None:
    request = getattr(task, "request", None)
    if request is None:
        return None
    value = getattr(request, "traceparent", None)
    if value:
        return value
    headers = getattr(request, "headers", None) or {}
    return headers.get("traceparent")


@signals.task_prerun.connect
def _attach_traceparent(task: Any = None, **_: Any) -> None:
    token = tracing.attach_remote_parent(_traceparent_of(task))
    if task is not None:
        task.request.aios_trace_token = token


@signals.task_postrun.connect
def _detach_traceparent(task: Any = None, **_: Any) -> None:
    if task is not None:
        tracing.detach(getattr(task.request, "aios_trace_token", None))


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_spans(**_: Any) -> None:
    from observability.writer import flush_at_exit

    flush_at_exit()
