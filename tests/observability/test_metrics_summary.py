"""Percentiles and totals checked against values computed independently with numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from observability import get_observability, histogram
from observability.tracing import Span
from observability.writer import get_writer
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)
obs = get_observability()


def record(latencies_ms: np.ndarray, *, agent: str, model: str, errors: int = 0) -> None:
    """Spans with chosen latencies (written through the real writer)."""
    writer = get_writer()
    for i, latency in enumerate(latencies_ms):
        span = Span(writer, "op", "llm", agent, None)
        span.set_tokens(input_tokens=100, output_tokens=10, model=model, provider="openai")
        if i < errors:
            span.set_error("TimeoutError", "upstream timed out")
        span._ended = True  # written below with our latency, not the wall clock's
        writer.add_span(span, span.started_at + timedelta(milliseconds=float(latency)), float(latency))


@pytest.fixture
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    sets = {"security": rng.lognormal(5.0, 0.8, 3000), "kernel": rng.lognormal(3.0, 1.2, 2000)}
    record(sets["security"], agent="security", model="gpt-4o", errors=30)
    record(sets["kernel"], agent="kernel", model="gpt-4o-mini", errors=100)
    flushed()
    return sets


def test_exact_summary_matches_numpy(data: dict[str, np.ndarray]) -> None:
    result = obs.get_metrics_summary(timedelta(minutes=10), exact=True)
    everything = np.concatenate(list(data.values()))
    s = result["summary"]
    assert s["total_calls"] == 5000 and s["error_count"] == 130
    assert s["error_rate"] == pytest.approx(130 / 5000)
    assert s["total_tokens"] == 5000 * 110
    for q in (50, 95, 99):
        assert s[f"p{q}_latency_ms"] == pytest.approx(np.percentile(everything, q), rel=1e-9)
    kernel = result["by_agent"]["kernel"]
    assert kernel["total_calls"] == 2000 and kernel["error_rate"] == pytest.approx(0.05)
    assert kernel["p95_latency_ms"] == pytest.approx(np.percentile(data["kernel"], 95), rel=1e-9)
    assert set(result["by_model"]) == {"gpt-4o", "gpt-4o-mini"}


def test_rollup_summary_is_within_the_stated_error(data: dict[str, np.ndarray]) -> None:
    result = obs.get_metrics_summary(timedelta(minutes=10))
    assert result["source"] == "rollup_minute"
    everything = np.concatenate(list(data.values()))
    s = result["summary"]
    assert s["total_calls"] == 5000 and s["error_count"] == 130
    for q in (50, 95, 99):
        exact = np.percentile(everything, q, method="inverted_cdf")
        assert abs(s[f"p{q}_latency_ms"] - exact) / exact <= histogram.RELATIVE_ERROR + 1e-9
    for agent, values in data.items():
        est = result["by_agent"][agent]["p99_latency_ms"]
        exact = np.percentile(values, 99, method="inverted_cdf")
        assert abs(est - exact) / exact <= histogram.RELATIVE_ERROR + 1e-9


def test_filters_and_long_windows_read_hour_rollups(data: dict[str, np.ndarray]) -> None:
    result = obs.get_metrics_summary(timedelta(hours=24), agent="kernel")
    assert result["source"] == "rollup_hour"
    assert result["summary"]["total_calls"] == 2000
    assert list(result["by_agent"]) == ["kernel"]


def test_spans_outside_the_window_do_not_count(data: dict[str, np.ndarray]) -> None:
    later = timezone.now() + timedelta(hours=5)
    assert obs.get_metrics_summary(timedelta(minutes=10), now=later)["summary"]["total_calls"] == 0
    assert obs.get_metrics_summary(timedelta(minutes=10), now=later, exact=True)["summary"]["total_calls"] == 0


def test_an_empty_window_has_no_percentiles() -> None:
    s = obs.get_metrics_summary(timedelta(minutes=15))["summary"]
    assert s["total_calls"] == 0 and s["p95_latency_ms"] is None and s["error_rate"] == 0.0


def record_at(started_at: datetime, *, agent: str = "edge") -> None:
    writer = get_writer()
    span = Span(writer, "op", "llm", agent, None)
    span.started_at = started_at
    span._ended = True
    writer.add_span(span, started_at + timedelta(milliseconds=50), 50.0)


def test_a_24h_summary_covers_24h_not_the_whole_hour_its_start_falls_in() -> None:
    now = datetime(2030, 1, 2, 12, 30, 30, tzinfo=UTC)
    start = now - timedelta(hours=24)  # 2030-01-01 12:30:30, half-way through an hour bucket
    record_at(start - timedelta(minutes=25))  # 12:05, in the start's hour bucket but before the window
    record_at(start - timedelta(minutes=31))  # 11:59, an hour bucket before
    record_at(start + timedelta(minutes=15))  # 12:45: inside, in the partial first hour
    record_at(start + timedelta(hours=6))
    record_at(now - timedelta(seconds=20))
    flushed()
    for kwargs in ({}, {"agent": "edge"}, {"exact": True}):
        result = obs.get_metrics_summary(timedelta(hours=24), now=now, **kwargs)
        assert result["summary"]["total_calls"] == 3, kwargs
    assert obs.get_metrics_summary(timedelta(hours=24), now=now)["by_agent"]["edge"]["total_calls"] == 3


def test_rollup_windows_are_aligned_to_the_minute() -> None:
    from observability.selectors import rollup_ranges

    now = datetime(2030, 1, 2, 12, 30, 30, tzinfo=UTC)
    minute, hour = rollup_ranges(now - timedelta(hours=24), now)
    assert minute == (60, datetime(2030, 1, 1, 12, 30, tzinfo=UTC), datetime(2030, 1, 1, 12, 59, tzinfo=UTC))
    assert hour == (3600, datetime(2030, 1, 1, 13, 0, tzinfo=UTC), now)
    on_the_hour = datetime(2030, 1, 2, 13, 0, 0, tzinfo=UTC)
    assert rollup_ranges(on_the_hour - timedelta(hours=24), on_the_hour) == [
        (3600, datetime(2030, 1, 1, 13, 0, tzinfo=UTC), on_the_hour)
    ]
