"""Prometheus metrics, in multiprocess mode so every process of a pod adds up.

`PROMETHEUS_MULTIPROC_DIR` is set in settings before prometheus_client is imported anywhere;
`manage.py up` empties it at start. Span metrics are updated by the span writer once per
batch (not per span); gauges that describe shared state (queue depths, cache hit rate) are
read at scrape time by `DatabaseCollector`, from sources the apps register
(`register_db_gauge`, in their AppConfig.ready(): observability never imports them).

Label cardinality: `agent` and `model` come from the agent manifest and the model catalog,
so they are a few dozen values; spans ingested over OTLP may name anything, so each process
keeps at most `MAX_LABEL_VALUES` distinct values per label and reports the rest as "other".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

SPANS = Counter("aios_spans_total", "Spans recorded", ["kind", "agent", "model", "status"])
SPAN_LATENCY = Histogram(
    "aios_span_latency_seconds", "Span latency", ["kind", "agent", "model", "status"], buckets=LATENCY_BUCKETS_S
)
TOKENS = Counter("aios_tokens_total", "LLM tokens", ["agent", "model", "type"])
COST = Counter("aios_cost_usd_total", "Cost of LLM calls in USD", ["agent", "model"])
UNPRICED = Counter("aios_spans_unpriced_total", "Spans with tokens but no matching model price", ["model"])
SPANS_DROPPED = Counter("aios_spans_dropped_total", "Spans dropped because the span buffer was full")
SPAN_FLUSH_ERRORS = Counter("aios_span_flush_errors_total", "Failed span batch writes (retried)")
SPANS_BUFFERED = Gauge("aios_spans_buffered", "Spans waiting in process buffers", multiprocess_mode="livesum")

MAX_LABEL_VALUES = 100
OTHER = "other"
_seen_values: dict[str, set[str]] = {}


def bounded(label: str, value: str) -> str:
    """`value` while the label has fewer than MAX_LABEL_VALUES distinct values in this
    process, else "other" (a value seen before keeps its own series)."""
    seen = _seen_values.setdefault(label, set())
    if value in seen:
        return value
    if len(seen) >= MAX_LABEL_VALUES:
        return OTHER
    seen.add(value)
    return value


# Gauges computed from the database at scrape time, registered by apps:
# name -> function returning [(labels dict, value)].
_db_gauges: dict[str, tuple[str, list[str], Callable[[], Iterable[tuple[dict[str, str], float]]]]] = {}


def register_db_gauge(
    name: str, documentation: str, labels: list[str], read: Callable[[], Iterable[tuple[dict[str, str], float]]]
) -> None:
    """Add a gauge read at scrape time: `read()` yields (labels, value) pairs. Higher apps call
    this from their AppConfig.ready() (queue depths, cache hit rate...)."""
    _db_gauges[name] = (documentation, labels, read)


def observe_many(child: Histogram, values_s: np.ndarray) -> None:
    """Add many observations to one histogram child with one increment per bucket."""
    if values_s.size == 0:
        return
    upper = getattr(child, "_upper_bounds", None)
    buckets = getattr(child, "_buckets", None)
    if upper is None or buckets is None:  # prometheus_client internals changed: slow path
        for value in values_s:
            child.observe(float(value))
        return
    child._sum.inc(float(values_s.sum()))
    idx = np.searchsorted(np.asarray(upper, dtype=np.float64), values_s, side="left")
    for i, n in zip(*np.unique(idx, return_counts=True), strict=True):
        buckets[int(i)].inc(int(n))


class DatabaseCollector:
    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, (doc, labels, read) in _db_gauges.items():
            family = GaugeMetricFamily(name, doc, labels=labels)
            try:
                for label_values, value in read():
                    family.add_metric([label_values.get(lbl, "") for lbl in labels], value)
            except Exception:  # noqa: BLE001 - a failing gauge must not break the scrape
                continue
            yield family


def render() -> bytes:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
