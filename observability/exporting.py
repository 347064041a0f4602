"""Span and trace export as JSON: per trace, or every trace of a time range (ndjson/json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import IO, Any
from uuid import UUID

from observability.models import Span, Trace


def usd(value: Decimal | None) -> str | None:
    """A cost as a plain decimal string ('0.0016', never '1.6E-3')."""
    return None if value is None else format(value.normalize(), "f")


def span_attributes(span: Span) -> dict[str, Any]:
    """The span's attributes with the OpenTelemetry gen_ai.* fields its columns hold."""
    attrs = dict(span.attributes or {})
    if span.model:
        attrs.setdefault("gen_ai.request.model", span.model)
    if span.provider:
        attrs.setdefault("gen_ai.provider.name", span.provider)
    if span.input_tokens or span.output_tokens:
        attrs["gen_ai.usage.input_tokens"] = span.input_tokens
        attrs["gen_ai.usage.output_tokens"] = span.output_tokens
        attrs["gen_ai.usage.cache_read.input_tokens"] = span.cached_input_tokens
        attrs["gen_ai.usage.reasoning.output_tokens"] = span.reasoning_tokens
    return attrs


def span_to_dict(span: Span) -> dict[str, Any]:
    return {
        "trace_id": span.trace_id.hex,
        "span_id": span.span_id_hex,
        "parent_span_id": span.parent_span_id_hex,
        "name": span.name,
        "kind": span.kind,
        "agent": span.agent,
        "provider": span.provider,
        "model": span.model,
        "status": span.status,
        "started_at": span.started_at.isoformat(),
        "ended_at": span.ended_at.isoformat(),
        "latency_ms": span.latency_ms,
        "input_tokens": span.input_tokens,
        "output_tokens": span.output_tokens,
        "cached_input_tokens": span.cached_input_tokens,
        "reasoning_tokens": span.reasoning_tokens,
        "cost_usd": usd(span.cost_usd),
        "cost_status": span.cost_status,
        "error": {"type": span.error_type, "message": span.error_message, "stack": span.error_stack}
        if span.status == "error"
        else None,
        "user": span.username or None,
        "api_token": span.api_token or None,
        "attributes": span_attributes(span),
    }


def trace_to_dict(trace: Trace, spans: list[Span]) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id.hex,
        "name": trace.name,
        "kind": trace.kind,
        "agent": trace.agent,
        "user": trace.username or None,
        "api_token": trace.api_token or None,
        "status": trace.status,
        "started_at": trace.started_at.isoformat(),
        "ended_at": trace.ended_at.isoformat(),
        "duration_ms": trace.duration_ms,
        "span_count": trace.span_count,
        "error_count": trace.error_count,
        "input_tokens": trace.input_tokens,
        "output_tokens": trace.output_tokens,
        "cost_usd": usd(trace.cost_usd),
        "spans": [span_to_dict(s) for s in spans],
    }


def trace_export(trace_id: UUID) -> dict[str, Any]:
    trace = Trace.objects.get(pk=trace_id)
    return trace_to_dict(trace, list(Span.objects.filter(trace_id=trace_id).order_by("started_at")))


def _traces_in_range(since: datetime | None, until: datetime | None, chunk: int = 500) -> Iterator[dict[str, Any]]:
    qs = Trace.objects.order_by("started_at", "trace_id")
    if since:
        qs = qs.filter(started_at__gte=since)
    if until:
        qs = qs.filter(started_at__lt=until)
    batch: list[Trace] = []
    for trace in qs.iterator(chunk_size=chunk):
        batch.append(trace)
        if len(batch) == chunk:
            yield from _with_spans(batch)
            batch = []
    yield from _with_spans(batch)


def _with_spans(traces: list[Trace]) -> Iterator[dict[str, Any]]:
    if not traces:
        return
    spans: dict[UUID, list[Span]] = {t.trace_id: [] for t in traces}
    for span in Span.objects.filter(trace_id__in=list(spans)).order_by("started_at"):
        spans[span.trace_id].append(span)
    for trace in traces:
        yield trace_to_dict(trace, spans[trace.trace_id])


def export_traces(stream: IO[str], *, since: datetime | None = None, until: datetime | None = None,
                  fmt: str = "ndjson") -> int:  # fmt: skip
    """Write every trace started in [since, until) with its spans; returns how many traces.

    ndjson: one trace per line. json: {"traces": [...]}, streamed (never all in memory)."""
    if fmt not in ("ndjson", "json"):
        raise ValueError("fmt must be 'ndjson' or 'json'")
    count = 0
    if fmt == "json":
        stream.write('{"traces": [')
    for trace in _traces_in_range(since, until):
        if fmt == "json":
            stream.write(("," if count else "") + "\n" + json.dumps(trace))
        else:
            stream.write(json.dumps(trace) + "\n")
        count += 1
    if fmt == "json":
        stream.write("\n]}\n")
    return count
