"""The overview's numbers: calls are LLM calls and agent actions, every kind has its row, the
cache hit rate comes from cache-lookup spans, and panels registered by higher apps appear."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from observability import get_observability
from observability.selectors import metrics_timeseries, overview_summary
from tests.factories import make_user
from tests.helpers import login
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)
obs = get_observability()


def gateway_request(result: str, *, error: bool = False) -> None:
    """The spans a gateway request leaves: a root, a cache lookup, a route, an LLM call on a miss."""
    with obs.trace_span("gateway.chat_completions", kind="internal"):
        with obs.trace_span("cache.lookup", kind="cache") as lookup:
            lookup.set_attribute("aios.cache.result", result)
        if result == "hit":
            return
        with obs.trace_span("route", kind="route"):
            pass
        with obs.trace_span("chat gpt-4o-mini", kind="llm") as llm:
            llm.set_tokens(input_tokens=1000, output_tokens=100, model="gpt-4o-mini", provider="openai")
            if error:
                llm.set_error("RateLimited", "429")


def agent_action() -> None:
    with obs.trace_span("agent.run.request", agent_name="kernel", kind="internal"):
        pass
    with obs.trace_span("agent.action", agent_name="kernel", kind="action"), obs.trace_span("tool.ps", kind="tool"):
        pass


@pytest.fixture
def traffic() -> None:
    from tests.seeds import ensure_seed_data

    ensure_seed_data()  # prices (transactional tests start with empty tables)
    for _ in range(3):
        gateway_request("hit")
    gateway_request("miss")
    gateway_request("miss", error=True)
    gateway_request("bypass")
    agent_action()
    agent_action()
    flushed()


def test_calls_are_llm_calls_and_agent_actions_not_every_span(traffic: None) -> None:
    result = overview_summary(window=timedelta(minutes=15))
    total = result["summary"]
    assert total["total_calls"] == 5  # 3 LLM calls (miss, miss, bypass) + 2 actions; 24 spans in all
    assert total["error_count"] == 1
    assert total["total_tokens"] == 3 * 1100 and total["total_cost_usd"] > 0
    assert result["by_model"]["gpt-4o-mini"]["total_calls"] == 3
    assert result["by_agent"]["kernel"]["total_calls"] == 2
    assert "" not in result["by_model"]  # actions have no model: they are not a model row
    assert result["calls_are"] == ["llm", "action"]


def test_every_span_kind_has_its_own_row(traffic: None) -> None:
    kinds = overview_summary(window=timedelta(minutes=15))["by_kind"]
    counts = {kind: row["total_calls"] for kind, row in kinds.items()}
    assert counts == {"internal": 8, "cache": 6, "route": 3, "llm": 3, "action": 2, "tool": 2}
    assert kinds["llm"]["error_count"] == 1 and kinds["llm"]["p95_latency_ms"] is not None


def test_the_cache_hit_rate_counts_hits_against_lookups_that_were_not_bypassed(traffic: None) -> None:
    cache = overview_summary(window=timedelta(minutes=15))["cache"]
    assert (cache["hits"], cache["misses"]) == (3, 2) and cache["hit_rate"] == pytest.approx(0.6)
    series = metrics_timeseries(window="15m")
    assert sum(series["cache_lookups"]) == 5
    rates = [r for r in series["cache_hit_rate"] if r is not None]
    assert rates and all(0 <= r <= 1 for r in rates)
    assert sum(series["calls"]) == 5  # the chart counts calls as the numbers do


def test_rebuilt_rollups_agree_with_the_written_ones(traffic: None) -> None:
    from observability.rollup_rebuild import rollups_rebuild

    before = overview_summary(window=timedelta(minutes=15))
    rollups_rebuild(since=timezone.now() - timedelta(hours=2), until=timezone.now() + timedelta(minutes=1))
    after = overview_summary(window=timedelta(minutes=15))
    assert after["summary"]["total_calls"] == before["summary"]["total_calls"] == 5
    assert after["by_kind"].keys() == before["by_kind"].keys() and after["cache"] == before["cache"]


def test_the_evaluation_panel_shows_the_mean_score_per_evaluator() -> None:
    from evaluation.models import ContinuousEvaluation, SpanScore

    continuous = ContinuousEvaluation.objects.create(name="prod")
    for n, (evaluator, value) in enumerate([("helpful", 0.5), ("helpful", 1.0), ("toxic", None), ("toxic", 0.2)]):
        SpanScore.objects.create(continuous=continuous, trace_id="5b8efff7-9803-8103-d269-b633813fc60c",
                                 span_id=n, evaluator=evaluator, value=value)  # fmt: skip
    old = SpanScore.objects.create(continuous=continuous, trace_id="5b8efff7-9803-8103-d269-b633813fc60c",
                                   span_id=99, evaluator="helpful", value=0.0)  # fmt: skip
    SpanScore.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=3))  # outside 1 h

    page = login(make_user("viewer")).get("/?window=1h")
    assert page.status_code == 200
    panel = next(p for p in page.context["snapshot"]["panels"] if p["key"] == "evaluation-scores")
    assert panel["rows"] == [["helpful", 2, 0.75, 0], ["toxic", 2, 0.2, 1]]
    assert [c["format"] for c in panel["columns"]] == ["text", "int", "score", "int"]


def test_a_failing_panel_shows_its_error_state_and_the_page_still_renders(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from observability import panels

    def broken(since, until):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setitem(panels._panels, "broken", panels.Panel("broken", "Broken", [panels.Column("x")], broken))
    page = login(make_user("viewer")).get("/")
    assert page.status_code == 200
    entry = next(p for p in page.context["snapshot"]["panels"] if p["key"] == "broken")
    assert entry["error"] and entry["rows"] == []
