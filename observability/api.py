"""Observability JSON API: metrics summaries and traces (viewer role)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from django.http import HttpRequest
from ninja import Router, Schema

from aios_core.access import VIEWER
from aios_core.api import Page, paginate, require_role
from observability.exporting import trace_export, usd
from observability.live import snapshot
from observability.models import Trace
from observability.selectors import metrics_summary, traces_search

router = Router(tags=["observability"])

WINDOWS = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@router.get("/metrics/summary")
def summary(
    request: HttpRequest, window: Literal["15m", "1h", "24h", "7d"] = "1h", agent: str | None = None,
    model: str | None = None, kind: str | None = None, exact: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Calls, error rate, tokens, cost and P50/P95/P99 latency, in total, per agent and per model."""
    require_role(request, VIEWER)
    return metrics_summary(window=WINDOWS[window], agent=agent, model=model, kind=kind, exact=exact)


@router.get("/metrics/timeseries")
def timeseries(request: HttpRequest, window: Literal["15m", "1h", "24h", "7d"] = "1h") -> dict[str, Any]:
    """The overview's data for a window: points (calls, errors, cost, P50/P95/P99), the summary,
    and the live feed's sequence number it corresponds to."""
    require_role(request, VIEWER)
    return snapshot(window)


class TraceOut(Schema):
    trace_id: str  # 32 hex digits, as OpenTelemetry writes it
    name: str
    kind: str
    agent: str
    username: str
    status: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    span_count: int
    error_count: int
    input_tokens: int
    output_tokens: int
    cost_usd: str

    @staticmethod
    def resolve_trace_id(obj: Trace) -> str:
        return obj.trace_id.hex

    @staticmethod
    def resolve_cost_usd(obj: Trace) -> str | None:
        return usd(obj.cost_usd)


@router.get("/traces", response=Page[TraceOut])
def traces_list(
    request: HttpRequest, since: datetime | None = None, until: datetime | None = None, agent: str = "",
    model: str = "", status: Literal["ok", "error", ""] = "", kind: str = "", q: str = "",
    cursor: str | None = None, limit: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Traces newest first, with the explorer's filters (model, kind and text match any span)."""
    require_role(request, VIEWER)
    qs = traces_search(since=since, until=until, agent=agent, model=model, status=status, kind=kind, text=q)
    rows, nxt = paginate(qs, cursor=cursor, limit=limit, field="started_at")
    return {"items": rows, "next": nxt}


@router.get("/traces/{trace_id}")
def trace_detail(request: HttpRequest, trace_id: UUID) -> dict[str, Any]:
    """The trace with every span, tokens, cost, errors and attributes."""
    require_role(request, VIEWER)
    return trace_export(trace_id)
