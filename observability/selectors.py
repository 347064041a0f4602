"""Reads: metrics summaries over a time window, from rollups (fast) or raw spans (exact)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone

from observability import histogram
from observability.models import ALL, Span, SpanRollup, Trace
from observability.series import CALL_KINDS, CALLS

# Windows up to this long read per-minute rollups; longer ones per-hour rollups (with minute
# rollups for the partial first hour), so a 7-day summary reads ~230 buckets, not ~10,000.
MINUTE_ROLLUPS_UP_TO = timedelta(hours=1)
QUANTILES = (50, 95, 99)


def _empty() -> dict[str, Any]:
    return {
        "total_calls": 0, "error_count": 0, "error_rate": 0.0, "total_tokens": 0, "input_tokens": 0,
        "output_tokens": 0, "total_cost_usd": 0.0, "unpriced_calls": 0,
        "p50_latency_ms": None, "p95_latency_ms": None, "p99_latency_ms": None, "avg_latency_ms": None,
    }  # fmt: skip


class _Acc:
    __slots__ = ("cost", "count", "errors", "hist", "input", "latency_sum", "output", "unpriced")

    def __init__(self) -> None:
        self.count = self.errors = self.input = self.output = self.unpriced = 0
        self.latency_sum = 0.0
        self.cost = 0.0
        self.hist = np.zeros(histogram.N_BINS, dtype=np.int64)

    def add(
        self, count: int, errors: int, lat_sum: float, inp: int, out: int, cost: Any, unpriced: int, hist: Any
    ) -> None:
        self.count += count
        self.errors += errors
        self.latency_sum += lat_sum
        self.input += inp
        self.output += out
        self.cost += float(cost or 0)
        self.unpriced += unpriced
        self.hist += hist

    def result(self) -> dict[str, Any]:
        out = _empty()
        if not self.count:
            return out
        p50, p95, p99 = histogram.percentiles(self.hist, QUANTILES)
        out.update(
            total_calls=self.count, error_count=self.errors, error_rate=self.errors / self.count,
            total_tokens=self.input + self.output, input_tokens=self.input, output_tokens=self.output,
            total_cost_usd=round(self.cost, 10), unpriced_calls=self.unpriced,
            p50_latency_ms=p50, p95_latency_ms=p95, p99_latency_ms=p99, avg_latency_ms=self.latency_sum / self.count,
        )  # fmt: skip
        return out


def _filters(agent: str | None, model: str | None, kind: str | None) -> tuple[str, list[Any]]:
    sql, params = "", []
    for column, value in (("agent", agent), ("model", model), ("kind", kind)):
        if value is not None:
            sql += f" AND {column} = %s"
            params.append(value)
    return sql, params


def _sparse(blob: bytes, dtype: str) -> np.ndarray:
    """Decode Postgres' binary array format (array_send) without building Python ints:
    a 20-byte header, then (4-byte length, value) per element."""
    if len(blob) <= 20:  # an empty array has a shorter header and no elements
        return np.zeros(0, dtype=dtype)
    record = np.dtype([("len", ">i4"), ("value", dtype)])
    return np.frombuffer(blob, dtype=record, offset=20)["value"]


def _rollup_rows(
    ranges: list[tuple[int, datetime, datetime]], where: str, params: list[Any], *, with_kind: bool = False
) -> list[tuple]:
    # array_send: the histograms travel as bytes and decode straight into numpy (see _sparse);
    # as int arrays, turning them into Python lists cost more than the query itself.
    extra = ", kind, cache_hits, cache_misses" if with_kind else ""
    sql = (
        "SELECT agent, model, count, error_count, latency_sum_ms, input_tokens, output_tokens, cost_usd, "
        f"unknown_cost_count, array_send(hist_bins), array_send(hist_counts){extra} FROM observability_spanrollup "
        f"WHERE resolution = %s AND bucket >= %s AND bucket <= %s{where}"
    )
    connection.ensure_connection()
    rows: list[tuple] = []
    with psycopg.Cursor(connection.connection) as cur:  # a binary-capable cursor (Django's are client-side)
        for resolution, first, last in ranges:
            cur.execute(sql, [resolution, first, last, *params], binary=True)
            rows.extend(cur.fetchall())
    return rows


def rollup_ranges(start: datetime, end: datetime) -> list[tuple[int, datetime, datetime]]:
    """The (resolution, first bucket, last bucket) ranges that cover [start, end].

    Windows up to an hour read minute buckets; longer ones read minute buckets up to the first
    full hour, then hour buckets, so a 24 h summary covers 24 h, not up to 25. The window is
    aligned to the minute: the minute `start` falls in is counted whole (under a minute more)."""
    first_minute = start.replace(second=0, microsecond=0)
    if end - start <= MINUTE_ROLLUPS_UP_TO:
        return [(60, first_minute, end)]
    first_hour = first_minute.replace(minute=0)
    if first_hour < first_minute:
        first_hour += timedelta(hours=1)
    head = [(60, first_minute, first_hour - timedelta(minutes=1))] if first_minute < first_hour else []
    return [*head, (3600, first_hour, end)]


def _from_rollups(
    start: datetime, end: datetime, agent: str | None, model: str | None, kind: str | None
) -> dict[str, Any]:
    ranges = rollup_ranges(start, end)
    if agent is None and model is None and kind is None:
        # The pre-aggregated rows: the total, one per agent, one per model (see SpanRollup).
        where, params = " AND kind = %s AND provider = %s AND (agent = %s OR model = %s)", [ALL, ALL, ALL, ALL]
    else:
        where, params = _filters(agent, model, kind)
        where += " AND provider <> %s"  # each span's own series only: pre-aggregated rows have provider "*"
        params.append(ALL)
    rows = _rollup_rows(ranges, where, params)
    total, by_agent, by_model = _Acc(), defaultdict(_Acc), defaultdict(_Acc)
    pre_aggregated = agent is None and model is None and kind is None
    for r in rows:
        hist = np.zeros(histogram.N_BINS, dtype=np.int64)
        hist[_sparse(r[9], ">i2").astype(np.int64)] = _sparse(r[10], ">i4")
        values = (r[2], r[3], r[4], r[5], r[6], r[7], r[8], hist)
        row_agent, row_model = r[0], r[1]
        if not pre_aggregated:
            total.add(*values)
            by_agent[row_agent].add(*values)
            by_model[row_model].add(*values)
        elif row_agent == ALL and row_model == ALL:
            total.add(*values)
        elif row_model == ALL:
            by_agent[row_agent].add(*values)
        else:
            by_model[row_model].add(*values)
    return {
        "summary": total.result(),
        "by_agent": {k: v.result() for k, v in sorted(by_agent.items())},
        "by_model": {k: v.result() for k, v in sorted(by_model.items())},
        "source": f"rollup_{'minute' if len(ranges) == 1 and ranges[0][0] == 60 else 'hour'}",
        "relative_error": histogram.RELATIVE_ERROR,
    }


_EXACT_SQL = """
SELECT GROUPING(agent) AS g_agent, GROUPING(model) AS g_model, agent, model,
       count(*), count(*) FILTER (WHERE status = 'error'), sum(input_tokens), sum(output_tokens),
       coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_status = 'unknown_model'), avg(latency_ms),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
FROM observability_span
WHERE started_at >= %s AND started_at <= %s{where}
GROUP BY GROUPING SETS ((), (agent), (model))
"""


def _from_spans(
    start: datetime, end: datetime, agent: str | None, model: str | None, kind: str | None
) -> dict[str, Any]:
    where, params = _filters(agent, model, kind)
    out: dict[str, Any] = {
        "summary": _empty(),
        "by_agent": {},
        "by_model": {},
        "source": "spans",
        "relative_error": 0.0,
    }
    with connection.cursor() as cur:
        cur.execute(_EXACT_SQL.format(where=where), [start, end, *params])
        for g_agent, g_model, a, m, n, errors, inp, outp, cost, unpriced, avg, pcts in cur.fetchall():
            entry = _empty()
            if n:
                entry.update(
                    total_calls=n, error_count=errors, error_rate=errors / n, input_tokens=int(inp),
                    output_tokens=int(outp), total_tokens=int(inp + outp), total_cost_usd=float(cost),
                    unpriced_calls=unpriced, avg_latency_ms=float(avg),
                    p50_latency_ms=pcts[0], p95_latency_ms=pcts[1], p99_latency_ms=pcts[2],
                )  # fmt: skip
            if g_agent and g_model:
                out["summary"] = entry
            elif not g_agent:
                out["by_agent"][a] = entry
            else:
                out["by_model"][m] = entry
    return out


def metrics_summary(
    *,
    window: timedelta,
    agent: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    exact: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Calls, errors, tokens, cost and latency percentiles over the last `window`, in total,
    per agent and per model. From rollups by default (percentiles within
    `histogram.RELATIVE_ERROR`, buckets of a minute or an hour); `exact=True` scans spans."""
    end = now or timezone.now()
    start = end - window
    result = (_from_spans if exact else _from_rollups)(start, end, agent, model, kind)
    result["window"] = {"start": start.isoformat(), "end": end.isoformat(), "seconds": window.total_seconds()}
    return result


# --- time series for the dashboard -----------------------------------------------------------------

# window -> (rollup resolution, seconds per chart point)
SERIES_LAYOUT: dict[str, tuple[int, int]] = {
    "15m": (60, 60),
    "1h": (60, 60),
    "24h": (60, 600),
    "7d": (3600, 3600),
}
WINDOW_SECONDS = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}


def _floor_epoch(ts: datetime, step: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step, tz=ts.tzinfo)


def metrics_timeseries(*, window: str, now: datetime | None = None, points: int | None = None) -> dict[str, Any]:
    """Per-point calls, errors, latency percentiles, cost and cache hit rate for the overview
    charts. Calls, errors and latency are the calls' (LLM calls and agent actions: the "calls"
    rollup rows, observability.series); cost and cache lookups are every span's (the total rows).
    `points` limits the result to the newest points (the live feed sends the last two; a point
    still filling up is sent again when it changes)."""
    resolution, step = SERIES_LAYOUT[window]
    end = now or timezone.now()
    span = WINDOW_SECONDS[window] if points is None else step * points
    first = _floor_epoch(end - timedelta(seconds=span) + timedelta(seconds=step), step)
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(
            "SELECT kind, bucket, count, error_count, cost_usd, cache_hits, cache_misses, array_send(hist_bins), "
            "array_send(hist_counts) "
            "FROM observability_spanrollup WHERE resolution = %s AND kind IN (%s, %s) AND agent = %s AND model = %s "
            "AND provider = %s AND bucket >= %s AND bucket <= %s ORDER BY bucket",
            [resolution, ALL, CALLS, ALL, ALL, ALL, first, end],
            binary=True,
        )
        rows = cur.fetchall()
    n = int((end - first).total_seconds() // step) + 1
    calls = np.zeros(n, dtype=np.int64)
    errors = np.zeros(n, dtype=np.int64)
    cost = np.zeros(n, dtype=np.float64)
    hits = np.zeros(n, dtype=np.int64)
    misses = np.zeros(n, dtype=np.int64)
    hists = np.zeros((n, histogram.N_BINS), dtype=np.int64)
    for kind, bucket, count, err, usd, c_hits, c_misses, bins_blob, counts_blob in rows:
        i = int((bucket - first).total_seconds() // step)
        if not 0 <= i < n:
            continue
        if kind == CALLS:
            calls[i] += count
            errors[i] += err
            hists[i, _sparse(bins_blob, ">i2").astype(np.int64)] += _sparse(counts_blob, ">i4")
        else:
            cost[i] += float(usd)
            hits[i] += c_hits
            misses[i] += c_misses
    p50, p95, p99 = [], [], []
    for i in range(n):
        a, b, c = histogram.percentiles(hists[i], QUANTILES)
        p50.append(a)
        p95.append(b)
        p99.append(c)
    lookups = (hits + misses).tolist()
    return {
        "window": window,
        "step_s": step,
        "t": [(first + timedelta(seconds=step * i)).isoformat() for i in range(n)],
        "calls": calls.tolist(),
        "errors": errors.tolist(),
        "error_rate": [(e / c if c else None) for e, c in zip(errors.tolist(), calls.tolist(), strict=True)],
        "cost": np.round(cost, 10).tolist(),
        "p50": p50,
        "p95": p95,
        "p99": p99,
        "cache_lookups": lookups,
        "cache_hit_rate": [(h / k if k else None) for h, k in zip(hits.tolist(), lookups, strict=True)],
    }


def _calls_and_costs(calls: _Acc | None, everything: _Acc | None) -> dict[str, Any]:
    """One overview row: calls, errors and latency of the calls; tokens and cost of every span."""
    out = calls.result() if calls is not None else _empty()
    if everything is not None:
        totals = everything.result()
        for key in ("total_tokens", "input_tokens", "output_tokens", "total_cost_usd", "unpriced_calls"):
            out[key] = totals[key]
    return out


def overview_summary(*, window: timedelta, now: datetime | None = None) -> dict[str, Any]:
    """What the overview's numbers and tables show over the window, from the pre-aggregated
    rollup rows: totals, per agent and per model counting calls (LLM calls and agent actions;
    a routing step or cache lookup is part of a call, not one), with the tokens and cost of all
    their spans; per span kind (every kind, e.g. approval spans: time spent waiting for people);
    and cache lookups (hits, misses, hit rate)."""
    end = now or timezone.now()
    rows = _rollup_rows(rollup_ranges(end - window, end), " AND provider = %s", [ALL], with_kind=True)
    totals: dict[tuple[str, str, str], _Acc] = defaultdict(_Acc)
    hits = misses = 0
    for r in rows:
        kind, agent, model = r[11], r[0], r[1]
        hist = np.zeros(histogram.N_BINS, dtype=np.int64)
        hist[_sparse(r[9], ">i2").astype(np.int64)] = _sparse(r[10], ">i4")
        totals[(kind, agent, model)].add(r[2], r[3], r[4], r[5], r[6], r[7], r[8], hist)
        if kind == ALL and agent == ALL and model == ALL:
            hits += r[12]
            misses += r[13]
    agents = sorted({a for k, a, m in totals if k in (ALL, CALLS) and a != ALL})
    models = sorted({m for k, a, m in totals if k == CALLS and m not in (ALL, "")})
    kinds = sorted({k for k, a, m in totals if k not in (ALL, CALLS)})
    return {
        "summary": _calls_and_costs(totals.get((CALLS, ALL, ALL)), totals.get((ALL, ALL, ALL))),
        "by_agent": {a: _calls_and_costs(totals.get((CALLS, a, ALL)), totals.get((ALL, a, ALL))) for a in agents},
        "by_model": {m: _calls_and_costs(totals.get((CALLS, ALL, m)), totals.get((ALL, ALL, m))) for m in models},
        "by_kind": {k: totals[(k, ALL, ALL)].result() for k in kinds},
        "cache": {"hits": hits, "misses": misses, "hit_rate": hits / (hits + misses) if hits + misses else None},
        "calls_are": list(CALL_KINDS),
        "relative_error": histogram.RELATIVE_ERROR,
    }


# --- traces explorer -----------------------------------------------------------------------------------


def traces_search(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    agent: str = "",
    model: str = "",
    status: str = "",
    kind: str = "",
    text: str = "",
) -> QuerySet[Trace]:
    """Traces matching the explorer's filters. Model, kind and text match any span of the trace
    (text: span names and error messages), so the span someone remembers finds its trace."""
    qs = Trace.objects.all()
    if since:
        qs = qs.filter(started_at__gte=since)
    if until:
        qs = qs.filter(started_at__lt=until)
    if agent:
        qs = qs.filter(agent=agent)
    if status == "error":
        qs = qs.filter(error_count__gt=0)
    elif status == "ok":
        qs = qs.filter(error_count=0)
    if model or kind or text:
        spans = Span.objects.all()
        if since:
            spans = spans.filter(started_at__gte=since - timedelta(hours=1))  # children start after their root
        if model:
            spans = spans.filter(model=model)
        if kind:
            spans = spans.filter(kind=kind)
        if text:
            spans = spans.filter(Q(name__icontains=text) | Q(error_message__icontains=text))
        qs = qs.filter(trace_id__in=spans.values("trace_id"))
    return qs


def filter_choices(since: datetime) -> dict[str, list[str]]:
    """Distinct agents and models seen recently, for the explorer's dropdowns (from rollups)."""
    rows = SpanRollup.objects.filter(resolution=3600, bucket__gte=since).exclude(provider=ALL)  # own series
    return {
        "agents": sorted({a for a in rows.values_list("agent", flat=True).distinct() if a}),
        "models": sorted({m for m in rows.values_list("model", flat=True).distinct() if m}),
    }


def waterfall(trace: Trace) -> list[dict[str, Any]]:
    """The trace's spans in tree order (depth-first by start), each with its offset and width
    as percentages of the trace's duration, for the waterfall timeline."""
    spans = list(Span.objects.filter(trace_id=trace.trace_id).order_by("started_at"))
    if not spans:
        return []
    start = min(s.started_at for s in spans)
    end = max(s.ended_at for s in spans)
    total_ms = max((end - start).total_seconds() * 1000, 0.001)
    children: dict[int | None, list[Span]] = defaultdict(list)
    ids = {s.span_id for s in spans}
    for s in spans:
        children[s.parent_span_id if s.parent_span_id in ids else None].append(s)
    rows: list[dict[str, Any]] = []

    def visit(span: Span, depth: int) -> None:
        offset_ms = (span.started_at - start).total_seconds() * 1000
        rows.append({
            "span": span, "depth": depth, "offset_pct": 100 * offset_ms / total_ms,
            "width_pct": max(100 * span.latency_ms / total_ms, 0.3), "offset_ms": offset_ms,
        })  # fmt: skip
        for child in children.get(span.span_id, []):
            visit(child, depth + 1)

    for root in children[None]:
        visit(root, 0)
    return rows


def costs_by_caller(*, window: timedelta, now: datetime | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Cost, tokens and traces per user and API token (the app calling) over the window."""
    end = now or timezone.now()
    rows = (
        Trace.objects.filter(started_at__gte=end - window, started_at__lte=end)
        .values("username", "api_token")
        .annotate(traces=Count("trace_id"), cost=Sum("cost_usd"), tokens=Sum(F("input_tokens") + F("output_tokens")))
        .order_by("-cost", "-traces")[:limit]
    )
    return [
        {"user": r["username"] or None, "api_token": r["api_token"] or None, "traces": r["traces"],
         "tokens": int(r["tokens"] or 0), "cost_usd": float(r["cost"] or 0)}
        for r in rows
    ]  # fmt: skip
