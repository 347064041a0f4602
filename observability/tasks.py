"""Observability tasks: retention, and a tracing probe."""

from __future__ import annotations

from celery import shared_task

from observability import get_observability
from observability.services import spans_delete_expired


@shared_task(name="observability.retention")
def retention() -> dict[str, int]:
    """Delete spans, traces and rollups past their retention, in batches (beat: hourly)."""
    return spans_delete_expired()


@shared_task(name="observability.trace_probe", ignore_result=False)
def trace_probe(name: str = "trace.probe") -> dict[str, str]:
    """Open one span in a worker and write it: checks tracing end to end, across processes."""
    obs = get_observability()
    with obs.trace_span(name, kind="internal") as span:
        span.set_attribute("probe", True)
    obs.flush(timeout=30)
    return {"trace_id": span.trace_id.hex, "span_id": span.span_id}
