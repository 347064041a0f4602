"""What other apps read to label routed requests: the decision behind a call, and a model's tier."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from routing.models import RoutingDecision
from routing.selectors import decision_for_trace, model_tier, training_side

pytestmark = pytest.mark.django_db


def test_the_decision_behind_a_call_is_the_newest_routed_one_made_before_it() -> None:
    trace_id, t0 = uuid.uuid4(), timezone.now()

    def decide(offset_s: float, model: str, decided_by: str = "heuristic") -> RoutingDecision:
        return RoutingDecision.objects.create(created_at=t0 + timedelta(seconds=offset_s), trace_id=trace_id,
                                              complexity="simple", score=0.1, decided_by=decided_by,
                                              chosen_model=model)  # fmt: skip

    first, second = decide(0, "sim/simple"), decide(2, "sim/complex")
    decide(1, "sim/medium", decided_by="explicit")  # a caller named its model: not a routing decision
    assert decision_for_trace(trace_id).id == first.id
    assert decision_for_trace(trace_id, at=t0 + timedelta(seconds=1.5)).id == first.id
    assert decision_for_trace(trace_id, at=t0 + timedelta(seconds=3)).id == second.id
    assert decision_for_trace(trace_id, at=t0 - timedelta(seconds=1)) is None
    assert decision_for_trace(uuid.uuid4()) is None


def test_a_model_s_tier_is_found_however_spans_or_decisions_name_it() -> None:
    assert model_tier("sim/simple") == "simple"  # spans name the simulator sim/<tier>
    assert model_tier("gpt-4o") == "complex" and model_tier("openai/gpt-4o") == "complex"
    assert model_tier("gpt-4o-mini") == "medium" and model_tier("no-such-model") is None
    assert (training_side("simple"), training_side("complex"), training_side("medium")) == ("weak", "strong", None)
