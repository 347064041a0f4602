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
    assert continuous_tick.apply().get() == {"scored": 2, "queued": 1}
    scores = dict(SpanScore.objects.values_list("span_id", "value"))
    assert scores == {good.span_id: 1.0, bad.span_id: 0.0}
    item = queue.items.get()
    assert item.span_id == bad.span_id and item.content["output"][0]["content"] == "Go away."
    assert continuous_tick.apply().get() == {"scored": 0, "queued": 0}  # the rescan finds nothing new
    _span("No.", 4)
    assert continuous_tick.apply().get() == {"scored": 1, "queued": 1}
    home = login(make_user("viewer")).get(reverse("evaluation-home"))
    assert b"polite-1.0" in home.content and b"0.333" in home.content  # mean score of the three spans


def test_sampling_is_deterministic_per_span_and_honours_the_rate() -> None:
    assert all(sampled(n, 1.0) for n in range(1000)) and not any(sampled(n, 0.0) for n in range(1000))
    share = sum(sampled(n, 0.2) for n in range(20_000)) / 20_000
    assert 0.18 < share < 0.22
    _config(rate=0.0)
    _span("Go away.", 5)
    assert continuous_tick.apply().get() == {"scored": 0, "queued": 0}
