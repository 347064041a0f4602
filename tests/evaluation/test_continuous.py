from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from evaluation.continuous import sampled
from evaluation.models import ContinuousEvaluation, SpanScore
from evaluation.tasks import continuous_tick
from observability.models import Span
from tests.evaluation.factories import make_evaluator, make_queue
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def _span(answer: str, span_id: int, kind: str = "llm") -> Span:
    now = timezone.now()
    return Span.objects.create(
        span_id=span_id, trace_id=uuid.uuid4(), name="chat", kind=kind, model="sim/simple", started_at=now,
        ended_at=now, latency_ms=20, attributes={"gen_ai.input.messages": [{"role": "user", "content": "hi"}],
                                                 "gen_ai.output.messages": [{"role": "assistant", "content": answer}]},
    )  # fmt: skip


def _config(rate: float = 1.0, **fields: Any) -> ContinuousEvaluation:
    config = ContinuousEvaluation.objects.create(name=f"polite-{rate}", sample_rate=rate, threshold=0.5, **fields)
    config.evaluators.set([make_evaluator("regex", pattern="(?i)thank")])
    return config


def test_low_scoring_production_spans_reach_the_queue_and_are_scored_once() -> None:
    queue = make_queue(items=0)
    _config(queue=queue)
    good, bad = _span("Thank you, here it is.", 1), _span("Go away.", 2)
    _span("Go away.", 3, kind="route")  # not an LLM span: ignored
    assert continuous_tick.apply().get() == {"scored": 2, "queued": 1, "trained": 0}
    scores = dict(SpanScore.objects.values_list("span_id", "value"))
    assert scores == {good.span_id: 1.0, bad.span_id: 0.0}
    item = queue.items.get()
    assert item.span_id == bad.span_id and item.content["output"][0]["content"] == "Go away."
    assert continuous_tick.apply().get() == {"scored": 0, "queued": 0, "trained": 0}  # the rescan finds nothing new
    _span("No.", 4)
    assert continuous_tick.apply().get() == {"scored": 1, "queued": 1, "trained": 0}
    home = login(make_user("viewer")).get(reverse("evaluation-home"))
    assert b"polite-1.0" in home.content and b"0.333" in home.content  # mean score of the three spans


def test_sampling_is_deterministic_per_span_and_honours_the_rate() -> None:
    assert all(sampled(n, 1.0) for n in range(1000)) and not any(sampled(n, 0.0) for n in range(1000))
    share = sum(sampled(n, 0.2) for n in range(20_000)) / 20_000
    assert 0.18 < share < 0.22
    _config(rate=0.0)
    _span("Go away.", 5)
    assert continuous_tick.apply().get() == {"scored": 0, "queued": 0, "trained": 0}


def _config_limit(limit: int) -> ContinuousEvaluation:
    config = ContinuousEvaluation.objects.create(name=f"limit-{limit}", sample_rate=1.0, max_spans_per_tick=limit)
    config.evaluators.set([make_evaluator("regex", name=f"thanks-{limit}", pattern="(?i)thank")])
    return config


def test_a_tick_keeps_moving_when_more_spans_wait_than_it_reads_at_once() -> None:
    _config_limit(50)
    for n in range(120):
        _span("Thank you.", 1000 + n)
    assert [continuous_tick.apply().get()["scored"] for _ in range(4)] == [50, 50, 20, 0]
    assert SpanScore.objects.count() == 120


def _in_trace(span_id: int, root: str | None, *, username: str = "", ended_ago_s: float = 1) -> Span:
    """An LLM span inside a trace whose root is `root` (None: the root is not recorded yet)."""
    from datetime import timedelta

    from observability.models import Trace

    ended = timezone.now() - timedelta(seconds=ended_ago_s)
    trace_id = uuid.uuid4()
    if root is not None:
        Trace.objects.create(trace_id=trace_id, name=root, started_at=ended, ended_at=ended)
    return Span.objects.create(
        span_id=span_id, trace_id=trace_id, parent_span_id=span_id + 1, name="chat", kind="llm", model="sim/simple",
        started_at=ended, ended_at=ended, latency_ms=20, username=username,
        attributes={"gen_ai.output.messages": [{"role": "assistant", "content": "Go away."}]},
    )  # fmt: skip


def test_only_production_traffic_is_sampled_never_eval_runs_or_the_judge() -> None:
    from observability.models import Trace

    _config()
    production = _in_trace(10, "gateway.chat_completions")
    _in_trace(20, "eval.item")  # an eval run's call to its target
    _in_trace(30, "gateway.chat_completions", username="evaluation-judge")  # the judge's own call
    pending_eval = _in_trace(40, None)  # the root (eval.item) ends after its children: not written yet
    pending_prod = _in_trace(50, None)
    orphan = _in_trace(60, None, ended_ago_s=3600)  # its root never came: counted as production
    assert continuous_tick.apply().get()["scored"] == 2
    assert set(SpanScore.objects.values_list("span_id", flat=True)) == {production.span_id, orphan.span_id}
    now = timezone.now()
    Trace.objects.create(trace_id=pending_eval.trace_id, name="eval.item", started_at=now, ended_at=now)
    Trace.objects.create(trace_id=pending_prod.trace_id, name="security.audit", started_at=now, ended_at=now)
    assert continuous_tick.apply().get()["scored"] == 1
    assert set(SpanScore.objects.values_list("span_id", flat=True)) == {10, 50, 60}


def test_an_overlapping_tick_waits_its_turn_instead_of_paying_twice() -> None:
    import psycopg

    from tests.helpers import database_url

    config = _config()
    _span("Go away.", 7)
    with psycopg.connect(database_url(), autocommit=True) as other:
        from evaluation.continuous import LOCK_NAMESPACE

        assert other.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, config.pk]).fetchone()[0]
        assert continuous_tick.apply().get()["scored"] == 0  # another tick of this config is running
        assert not SpanScore.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, config.pk])
    assert continuous_tick.apply().get()["scored"] == 1


def test_scores_are_written_on_the_spans_and_summarised_for_the_dashboard(viewer: Any) -> None:
    from evaluation.selectors import score_aggregates

    _config()
    good, bad = _span("Thank you.", 81), _span("Go away.", 82)
    continuous_tick.apply().get()
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.attributes["aios.eval.regex"] == 1.0 and bad.attributes["aios.eval.regex"] == 0.0
    assert bad.attributes["gen_ai.output.messages"][0]["content"] == "Go away."  # merged, not replaced
    from observability.models import Trace

    Trace.objects.create(trace_id=bad.trace_id, name="chat", started_at=bad.started_at, ended_at=bad.ended_at)
    page = login(viewer).get(reverse("obs-trace-detail", args=[bad.trace_id]))
    assert b"aios.eval.regex" in page.content and b'data-score="regex"' in page.content
    summary = score_aggregates(hours=24)
    assert [(r["evaluator"], r["spans"], r["mean"]) for r in summary["by_evaluator"]] == [("regex", 2, 0.5)]
    assert [(r["model"], r["evaluator"], r["mean"]) for r in summary["by_model"]] == [("sim/simple", "regex", 0.5)]
    assert [(p["evaluator"], p["spans"], p["mean"]) for p in summary["series"]] == [("regex", 2, 0.5)]
