"""Reads: metrics summaries over a time window, from rollups (fast) or raw spans (exact)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from django.db import connection
from django.utils import timezone

from observability import histogram
from observability.models import ALL

# Windows up to this long read per-minute rollups; longer ones per-hour rollups (with hour
# resolution at the window's start), so a 7-day summary reads ~170 buckets, not ~10,000.
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


def _rollup_rows(resolution: int, first: datetime, end: datetime, where: str, params: list[Any]) -> list[tuple]:
    # array_send: the histograms travel as bytes and decode straight into numpy (see _sparse);
    # as int arrays, turning them into Python lists cost more than the query itself.
    sql = (
        "SELECT agent, model, count, error_count, latency_sum_ms, input_tokens, output_tokens, cost_usd, "
        "unknown_cost_count, array_send(hist_bins), array_send(hist_counts) FROM observability_spanrollup "
        f"WHERE resolution = %s AND bucket >= %s AND bucket <= %s{where}"
    )
    raw = connection.connection
    with psycopg.Cursor(raw) as cur:  # a binary-capable cursor (Django's are client-side)
        cur.execute(sql, [resolution, first, end, *params], binary=True)
        return cur.fetchall()


def _from_rollups(
    start: datetime, end: datetime, agent: str | None, model: str | None, kind: str | None
) -> dict[str, Any]:
    resolution = 60 if end - start <= MINUTE_ROLLUPS_UP_TO else 3600
    first_bucket = start.replace(second=0, microsecond=0)
    if resolution == 3600:
        first_bucket = first_bucket.replace(minute=0)
    if agent is None and model is None and kind is None:
        # The pre-aggregated rows: the total, one per agent, one per model (see SpanRollup).
        where, params = " AND kind = %s AND provider = %s AND (agent = %s OR model = %s)", [ALL, ALL, ALL, ALL]
    else:
        where, params = _filters(agent, model, kind)
        where += " AND kind <> %s"
        params.append(ALL)
    connection.ensure_connection()
    rows = _rollup_rows(resolution, first_bucket, end, where, params)
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
        "source": f"rollup_{'minute' if resolution == 60 else 'hour'}",
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
