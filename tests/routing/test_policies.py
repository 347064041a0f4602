"""Routing policies: deterministic weighted assignment, variant rewriting, the set/clear service."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from pydantic import ValidationError as PydanticError

from aios_core.errors import ConflictError
from observability.models import AuditEvent
from routing import completion, policies
from routing.completion import Caller, CompletionRequest
from routing.models import RoutingPolicy
from routing.policies import PolicyVariant, assign
from routing.router import Constraints, ModelRouter
from routing.services import routing_policy_clear, routing_policy_set

A = {"name": "A", "model": "auto"}
B = {"name": "B", "model": "auto", "min_tier": "complex", "system_prompt": "Be brief.", "template": "Q: {input}"}


class FakeSpan:
    def __init__(self) -> None:
        self.trace_id = uuid.uuid4()
        self.attributes: dict[str, Any] = {}

    def set_attributes(self, values: dict[str, Any]) -> None:
        self.attributes.update(values)


def test_assignment_is_deterministic_and_differs_between_salts() -> None:
    units = [uuid.uuid4().hex for _ in range(2000)]
    first = [assign("test-1", u, [50, 50]) for u in units]
    assert first == [assign("test-1", u, [50, 50]) for u in units]
    other = [assign("test-2", u, [50, 50]) for u in units]
    agreement = sum(x == y for x, y in zip(first, other, strict=True)) / len(units)
    assert 0.45 < agreement < 0.55  # independent splits agree half the time


@pytest.mark.parametrize("weights", [[50, 50], [90, 10], [1, 3], [20, 30, 50]])
def test_assignment_follows_the_weights(weights: list[float]) -> None:
    n = 40_000
    counts = Counter(assign("split", str(i), weights) for i in range(n))
    for index, weight in enumerate(weights):
        share = weight / sum(weights)
        # Four standard errors of a binomial share: fails by chance about once in 16,000 runs.
        assert abs(counts[index] / n - share) < 4 * (share * (1 - share) / n) ** 0.5


def test_a_variant_renders_its_system_prompt_and_template_without_touching_the_caller() -> None:
    variant = PolicyVariant.model_validate(B)
    messages = [{"role": "system", "content": "app"}, {"role": "user", "content": "what is {x}?"}]
    assert variant.render(messages) == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "app"},
        {"role": "user", "content": "Q: what is {x}?"},  # braces in user text are not a format string
    ]
    assert messages[1]["content"] == "what is {x}?"
    parts = variant.render([{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}])
    assert parts[-1]["content"][0] == {"type": "text", "text": "Q: hi"}


def test_a_variant_tightens_the_callers_constraints() -> None:
    variant = PolicyVariant(name="cheap", max_cost_usd=0.01, min_tier="medium")
    merged = variant.constraints(Constraints(max_cost_usd=0.002, max_latency_ms=900))
    assert (merged.max_cost_usd, merged.max_latency_ms, merged.min_tier) == (0.002, 900, "medium")


def test_bad_variants_are_refused_naming_the_problem() -> None:
    with pytest.raises(PydanticError, match="must contain \\{input\\}"):
        PolicyVariant(name="A", template="no placeholder")
    with pytest.raises(PydanticError, match="needs model 'auto'"):
        PolicyVariant(name="A", model="sim/simple", min_tier="complex")
    with pytest.raises(PydanticError, match="one weight per variant"):
        policies.PolicySpec.model_validate({"variants": [A, B], "weights": [1]})
    with pytest.raises(PydanticError, match="unique"):
        policies.PolicySpec.model_validate({"variants": [A, A], "weights": [1, 1]})


@pytest.mark.django_db
def test_a_minimum_tier_raises_the_routed_tier() -> None:
    from tests.seeds import ensure_seed_data

    ensure_seed_data()
    decision = ModelRouter().route("hi", Constraints(min_tier="complex"))
    assert decision.complexity == "complex" and decision.chosen.tier == "complex"
    assert "raised to complex by policy" in decision.reason


@pytest.mark.django_db
def test_setting_and_clearing_a_policy_is_audited_and_only_one_is_active(operator: Any) -> None:
    row = routing_policy_set(name="abtest:1", variants=[A, B], weights=[50, 50], label="t1", actor=operator)
    assert row.active and row.spec.variants[1].min_tier == "complex"
    with pytest.raises(ConflictError, match="abtest:1 is active"):
        routing_policy_set(name="abtest:2", variants=[A, B], weights=[1, 1], actor=operator)
    with pytest.raises(ValidationError, match="Unknown model"):
        routing_policy_set(name="abtest:1", variants=[A, {"name": "B", "model": "acme/nope"}], weights=[1, 1])
    with pytest.raises(ValidationError, match="variants"):
        routing_policy_set(name="abtest:1", variants=[A], weights=[1])
    assert routing_policy_clear(name="abtest:1", actor=operator) is True
    assert routing_policy_clear(name="abtest:1", actor=operator) is False
    assert not RoutingPolicy.objects.filter(active=True).exists()
    actions = list(
        AuditEvent.objects.filter(object_type="routing_policy").order_by("seq").values_list("action", flat=True)
    )
    assert actions == ["routing_policy.set", "routing_policy.cleared"]


@pytest.mark.django_db(transaction=True)  # the policy is loaded from another thread: it must be committed
def test_only_gateway_requests_for_auto_are_rewritten() -> None:
    from tests.seeds import ensure_seed_data

    ensure_seed_data()
    routing_policy_set(name="abtest:x", variants=[A, B], weights=[50, 50], label="x")
    policies.active_policy.invalidate()
    gateway = Caller(username="app", api_token="billing")
    seen = Counter()
    for _ in range(60):
        req, root = CompletionRequest(messages=[{"role": "user", "content": "hi"}]), FakeSpan()
        variant = async_to_sync(policies.apply)(req, gateway, root)
        assert variant == ["A", "B"][assign("abtest:x", root.trace_id.hex, [50, 50])]
        assert root.attributes == req.attributes == {"aios.ab.test": "x", "aios.ab.policy": "abtest:x",
                                                      "aios.ab.variant": variant}  # fmt: skip
        assert req.cache_control == "no-store"  # a cached answer would cross the arms
        if variant == "B":
            assert req.messages[0]["content"] == "Be brief." and req.messages[-1]["content"] == "Q: hi"
            assert req.constraints.min_tier == "complex"
            decision, _ = completion.plan(req)
            assert decision.chosen.tier == "complex" and decision.features["aios.ab.variant"] == "B"
        seen[variant] += 1
    assert seen["A"] > 10 and seen["B"] > 10
    judge = CompletionRequest(messages=[{"role": "user", "content": "hi"}])
    assert async_to_sync(policies.apply)(judge, Caller(username="evaluation-judge"), FakeSpan()) is None
    named = CompletionRequest(messages=[{"role": "user", "content": "hi"}], model="sim/simple")
    assert async_to_sync(policies.apply)(named, gateway, FakeSpan()) is None
    assert judge.attributes == named.attributes == {}
    routing_policy_clear(name="abtest:x")
    policies.active_policy.invalidate()
    assert async_to_sync(policies.apply)(CompletionRequest(messages=[]), gateway, FakeSpan()) is None
