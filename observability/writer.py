"""The span writer: a bounded in-process buffer flushed to Postgres in batches, off the hot path.

Each process (web, Celery worker child, script) has one writer with one background thread
and its own psycopg connection. A flush runs in one transaction: COPY the spans, upsert the
totals of their traces, upsert the per-minute and per-hour rollups. While the database is
away, batches go back to the front of the buffer and are retried with backoff; when the
buffer is full, new spans are dropped and counted (aios_spans_dropped_total), never silently.
Spans are flushed at shutdown (atexit, and Celery's worker_process_shutdown).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from observability import histogram, prometheus
from observability.batching import BufferedWriter, connect_like_django
from observability.series import CACHE_KIND, cache_outcome, series_keys

log = logging.getLogger(__name__)

SPAN_COLUMNS = (
    "span_id", "trace_id", "parent_span_id", "name", "kind", "agent", "provider", "model", "status", "started_at",
    "ended_at", "latency_ms", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
    "cost_status", "error_type", "error_message", "error_stack", "attributes", "username", "api_token",
)  # fmt: skip
COL = {name: i for i, name in enumerate(SPAN_COLUMNS)}
COPY_SQL = f"COPY observability_span ({', '.join(SPAN_COLUMNS)}) FROM STDIN"

TRACE_UPSERT = """
INSERT INTO observability_trace AS t (trace_id, name, kind, agent, username, api_token, started_at, ended_at,
    span_count, error_count, input_tokens, output_tokens, cost_usd)
SELECT * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[],
    %s::timestamptz[], %s::int[], %s::int[], %s::bigint[], %s::bigint[], %s::numeric[])
ON CONFLICT (trace_id) DO UPDATE SET
    name = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.name ELSE t.name END,
    kind = CASE WHEN EXCLUDED.name <> '' THEN EXCLUDED.kind ELSE t.kind END,
    agent = CASE WHEN EXCLUDED.name <> '' OR t.agent = '' THEN EXCLUDED.agent ELSE t.agent END,
    username = CASE WHEN t.username = '' THEN EXCLUDED.username ELSE t.username END,
    api_token = CASE WHEN t.api_token = '' THEN EXCLUDED.api_token ELSE t.api_token END,
    started_at = LEAST(t.started_at, EXCLUDED.started_at),
    ended_at = GREATEST(t.ended_at, EXCLUDED.ended_at),
    span_count = t.span_count + EXCLUDED.span_count,
    error_count = t.error_count + EXCLUDED.error_count,
    input_tokens = t.input_tokens + EXCLUDED.input_tokens,
    output_tokens = t.output_tokens + EXCLUDED.output_tokens,
    cost_usd = t.cost_usd + EXCLUDED.cost_usd
"""

ROLLUP_UPSERT = """
INSERT INTO observability_spanrollup AS r (resolution, bucket, kind, agent, model, provider, count, error_count,
    latency_sum_ms, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, unknown_cost_count,
    cache_hits, cache_misses, hist_bins, hist_counts)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (resolution, bucket, kind, agent, model, provider) DO UPDATE SET
    count = r.count + EXCLUDED.count,
    error_count = r.error_count + EXCLUDED.error_count,
    latency_sum_ms = r.latency_sum_ms + EXCLUDED.latency_sum_ms,
    input_tokens = r.input_tokens + EXCLUDED.input_tokens,
    output_tokens = r.output_tokens + EXCLUDED.output_tokens,
    cached_input_tokens = r.cached_input_tokens + EXCLUDED.cached_input_tokens,
    reasoning_tokens = r.reasoning_tokens + EXCLUDED.reasoning_tokens,
    cost_usd = r.cost_usd + EXCLUDED.cost_usd,
    unknown_cost_count = r.unknown_cost_count + EXCLUDED.unknown_cost_count,
    cache_hits = r.cache_hits + EXCLUDED.cache_hits,
    cache_misses = r.cache_misses + EXCLUDED.cache_misses,
    (hist_bins, hist_counts) = (
        SELECT bins, counts FROM aios_hist_merge(r.hist_bins, r.hist_counts, EXCLUDED.hist_bins, EXCLUDED.hist_counts))
"""

RESOLUTIONS = (60, 3600)

FlushListener = Callable[[Sequence[tuple[Any, ...]]], None]


PENDING = "pending"  # cost_status of a row not priced yet (the flusher prices it)


def span_row(span: Any, ended_at: datetime, latency_ms: float) -> tuple[Any, ...]:
    """The COPY row for an ended span. Cost is filled in by the flusher (`priced`): pricing
    may read the price table from the database, which an async caller must not do."""
    return (
        span.span_id, span.trace_id, span.parent_span_id, span.name, span.kind, span.agent, span.provider,
        span.model, span.status, span.started_at, ended_at, latency_ms, span.input_tokens, span.output_tokens,
        span.cached_input_tokens, span.reasoning_tokens, None, PENDING, span.error_type,
        span.error_message, span.error_stack, span.attributes, span.username, span.api_token,
    )  # fmt: skip


def priced(row: tuple[Any, ...], conn: Any = None) -> tuple[Any, ...]:
    """The row with its cost from the price table in effect at the span's start (prices
    reloaded, when they changed, over `conn`: the writer's own connection)."""
    if row[COL["cost_status"]] != PENDING:
        return row
    from observability.pricing import cost_of, prices

    model = row[COL["model"]]
    price = prices.price_for(model, row[COL["started_at"]], row[COL["provider"]], conn=conn) if model else None
    cost = cost_of(price, input_tokens=row[COL["input_tokens"]], output_tokens=row[COL["output_tokens"]],
                   cached_input_tokens=row[COL["cached_input_tokens"]])  # fmt: skip
    c = COL["cost_usd"]
    return (*row[:c], cost.usd, cost.status, *row[c + 2 :])


def rollup_rows(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Aggregate a batch of span rows into rollup deltas, one per (resolution, bucket, series).

    One pass groups spans by (series, minute); those few groups are then merged into the hour
    buckets and the pre-aggregated rows (observability.series), so the per-span cost does not
    grow with the number of rollups."""
    c_kind, c_agent, c_model, c_prov = COL["kind"], COL["agent"], COL["model"], COL["provider"]
    c_start, c_status, c_cost, c_cstat = COL["started_at"], COL["status"], COL["cost_usd"], COL["cost_status"]
    c_in, c_out = COL["input_tokens"], COL["output_tokens"]
    c_cached, c_reason, c_attr = COL["cached_input_tokens"], COL["reasoning_tokens"], COL["attributes"]
    base: dict[tuple[Any, ...], list[Any]] = {}
    for i, r in enumerate(rows):
        kind = r[c_kind]
        key = (kind, r[c_agent], r[c_model], r[c_prov], r[c_start].replace(second=0, microsecond=0))
        acc = base.get(key)
        if acc is None:
            # errors, input, output, cached, reasoning, cost, unknown cost, cache hits, misses, span indexes
            acc = base[key] = [0, 0, 0, 0, 0, Decimal(0), 0, 0, 0, []]
        acc[0] += r[c_status] == "error"
        acc[1] += r[c_in]
        acc[2] += r[c_out]
        acc[3] += r[c_cached]
        acc[4] += r[c_reason]
        if r[c_cost] is not None:
            acc[5] += r[c_cost]
        acc[6] += r[c_cstat] == "unknown_model"
        if kind == CACHE_KIND:
            hit, miss = cache_outcome(kind, r[c_attr])
            acc[7] += hit
            acc[8] += miss
        acc[9].append(i)
    latency = np.fromiter((r[COL["latency_ms"]] for r in rows), dtype=np.float64, count=len(rows))
    bins = histogram.bins_of(latency)
    merged: dict[tuple[Any, ...], list[Any]] = {}
    for (kind, agent, model, provider, minute), acc in base.items():
        idx = np.asarray(acc[9])
        hist = np.bincount(bins[idx], minlength=histogram.N_BINS)
        values = [len(idx), acc[0], float(latency[idx].sum()), *acc[1:9]]
        for res, bucket in ((60, minute), (3600, minute.replace(minute=0))):
            for series in series_keys(kind, agent, model, provider):
                key = (res, bucket, *series)
                target = merged.get(key)
                if target is None:
                    merged[key] = [*values, hist.copy()]
                else:
                    for n, v in enumerate(values):
                        target[n] += v
                    target[-1] += hist
    out = []
    for key in sorted(merged):  # a fixed order: concurrent writers lock rows alike, no deadlock
        *values, hist = merged[key]
        nonzero = np.flatnonzero(hist)
        out.append((*key, *values, nonzero.tolist(), hist[nonzero].tolist()))
    return out


def trace_columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """Per-trace totals of a batch, as the column arrays TRACE_UPSERT unnests."""
    acc: dict[Any, list[Any]] = {}
    for r in rows:
        tid = r[COL["trace_id"]]
        is_root = r[COL["parent_span_id"]] is None
        t = acc.get(tid)
        if t is None:
            t = acc[tid] = ["", "", "", "", "", r[COL["started_at"]], r[COL["ended_at"]], 0, 0, 0, 0, Decimal(0)]
        if is_root:
            t[0], t[1], t[2] = r[COL["name"]], r[COL["kind"]], r[COL["agent"]]
        elif not t[2]:
            t[2] = r[COL["agent"]]
        t[3] = t[3] or r[COL["username"]]
        t[4] = t[4] or r[COL["api_token"]]
        t[5] = min(t[5], r[COL["started_at"]])
        t[6] = max(t[6], r[COL["ended_at"]])
        t[7] += 1
        t[8] += r[COL["status"]] == "error"
        t[9] += r[COL["input_tokens"]]
        t[10] += r[COL["output_tokens"]]
        if r[COL["cost_usd"]] is not None:
            t[11] += r[COL["cost_usd"]]
    keys = sorted(acc)
    return [keys, *([acc[k][i] for k in keys] for i in range(12))]


def update_prometheus(rows: Sequence[tuple[Any, ...]]) -> None:
    counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
    tokens: dict[tuple[str, str, str], int] = defaultdict(int)
    costs: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    latencies: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    bounded = prometheus.bounded
    for r in rows:
        kind, status = r[COL["kind"]], r[COL["status"]]
        agent, model = bounded("agent", r[COL["agent"]]), bounded("model", r[COL["model"]])
        counts[(kind, agent, model, status)] += 1
        latencies[(kind, agent, model, status)].append(r[COL["latency_ms"]] / 1000)
        if r[COL["input_tokens"]] or r[COL["output_tokens"]]:
            tokens[(agent, model, "input")] += r[COL["input_tokens"]] - r[COL["cached_input_tokens"]]
            tokens[(agent, model, "cached_input")] += r[COL["cached_input_tokens"]]
            tokens[(agent, model, "output")] += r[COL["output_tokens"]]
            if r[COL["cost_status"]] == "unknown_model":
                prometheus.UNPRICED.labels(model).inc()  # bounded above
            elif r[COL["cost_usd"]] is not None:
                costs[(agent, model)] += r[COL["cost_usd"]]
    for labels, n in counts.items():
        prometheus.SPANS.labels(*labels).inc(n)
    for labels, values in latencies.items():
        prometheus.observe_many(prometheus.SPAN_LATENCY.labels(*labels), np.asarray(values))
    for labels, n in tokens.items():
        if n:
            prometheus.TOKENS.labels(*labels).inc(n)
    for labels, usd in costs.items():
        prometheus.COST.labels(*labels).inc(float(usd))


def _connect() -> Any:
    """The span writer's connection (a seam tests replace to point it at another server)."""
    return connect_like_django()


class SpanWriter(BufferedWriter):
    """The span flavour of the buffered writer: COPY spans, upsert traces and rollups."""

    name = "span"

    def __init__(self, *, max_spans: int, flush_interval_s: float, batch_size: int) -> None:
        super().__init__(max_items=max_spans, flush_interval_s=flush_interval_s, batch_size=batch_size)
        self._listeners: list[FlushListener] = []

    def add_span(self, span: Any, ended_at: datetime, latency_ms: float) -> None:
        self.add_row(span_row(span, ended_at, latency_ms))

    def add_row(self, row: tuple[Any, ...]) -> None:
        self.add(row)

    def add_listener(self, listener: FlushListener) -> None:
        """Called with each batch after it committed (the live dashboard feed)."""
        self._listeners.append(listener)

    def on_drop(self, n: int) -> None:
        prometheus.SPANS_DROPPED.inc(n)

    def on_failure(self, exc: Exception) -> None:
        prometheus.SPAN_FLUSH_ERRORS.inc()

    def after_cycle(self) -> None:
        prometheus.SPANS_BUFFERED.set(self.pending)

    def connect(self) -> Any:
        return _connect()

    def write_batch(self, conn: Any, batch: list[tuple[Any, ...]]) -> None:
        batch[:] = [priced(row, conn) for row in batch]  # in place: a retried batch is not priced twice
        rollups = rollup_rows(batch)
        traces = trace_columns(batch)
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(COPY_SQL) as copy:
                attr = COL["attributes"]
                for row in batch:
                    copy.write_row((*row[:attr], json.dumps(row[attr], default=str), *row[attr + 1 :]))
            cur.execute(TRACE_UPSERT, traces)
            cur.executemany(ROLLUP_UPSERT, rollups)

    def after_commit(self, batch: list[tuple[Any, ...]]) -> None:
        try:
            update_prometheus(batch)
        except Exception:
            log.exception("prometheus update failed")
        for listener in self._listeners:
            try:
                listener(batch)
            except Exception:
                log.exception("span flush listener failed")


_writer: SpanWriter | None = None
_writer_pid: int | None = None
_lock = threading.Lock()


def get_writer() -> SpanWriter:
    """This process's writer (a forked child gets a fresh, empty one)."""
    global _writer, _writer_pid
    if _writer is None or _writer_pid != os.getpid():
        with _lock:
            if _writer is None or _writer_pid != os.getpid():
                from django.conf import settings

                _writer = SpanWriter(
                    max_spans=settings.AIOS_SPAN_BUFFER_MAX,
                    flush_interval_s=settings.AIOS_SPAN_FLUSH_INTERVAL_S,
                    batch_size=settings.AIOS_SPAN_BATCH,
                )
                _writer_pid = os.getpid()
                for listener in _global_listeners:
                    _writer.add_listener(listener)
    return _writer


_global_listeners: list[FlushListener] = []


def add_flush_listener(listener: FlushListener) -> None:
    """Register a listener for this and every future writer of the process."""
    _global_listeners.append(listener)
    if _writer is not None and _writer_pid == os.getpid():
        _writer.add_listener(listener)


def flush_at_exit() -> None:
    if _writer is not None and _writer_pid == os.getpid():
        _writer.close(timeout=10)


atexit.register(flush_at_exit)
