"""Admins edit prices (validated, audited); costs only change through the audited recompute."""

from __future__ import annotations

from decimal import Decimal

import pytest

from observability import get_observability
from observability.models import AuditEvent, ModelPrice, Span, Trace
from observability.pricing import prices
from tests.factories import make_user
from tests.helpers import login
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)

FORM = {"provider": "acme", "pattern": "acme-1", "display_name": "Acme 1", "input_per_mtok": "1",
        "output_per_mtok": "2", "cached_input_per_mtok": "", "effective_from_0": "2020-01-01",
        "effective_from_1": "00:00:00", "priority": "0", "notes": ""}  # fmt: skip


def test_the_admin_refuses_bad_regexes_and_negative_prices() -> None:
    client = login(make_user("admin"))
    resp = client.post("/admin/observability/modelprice/add/", {**FORM, "pattern": "acme-(", "output_per_mtok": "-1"})
    assert resp.status_code == 200
    errors = resp.context["adminform"].form.errors
    assert "pattern" in errors and "output_per_mtok" in errors
    assert not ModelPrice.objects.filter(provider="acme").exists()


def test_a_price_change_is_audited_and_leaves_recorded_costs_alone() -> None:
    client = login(make_user("admin", username="pricing-admin"))
    assert client.post("/admin/observability/modelprice/add/", FORM).status_code == 302
    price = ModelPrice.objects.get(provider="acme")
    prices.invalidate()
    obs = get_observability()
    with obs.trace_span("llm", kind="llm") as span:
        span.set_tokens(input_tokens=1_000_000, output_tokens=0, model="acme-1", provider="acme")
    flushed()
    assert Span.objects.get(name="llm").cost_usd == Decimal("1")

    client.post(f"/admin/observability/modelprice/{price.pk}/change/", {**FORM, "input_per_mtok": "3"})
    assert Span.objects.get(name="llm").cost_usd == Decimal("1")  # recorded costs untouched
    changed = AuditEvent.objects.get(action="price.changed")
    assert changed.actor == "pricing-admin" and changed.data["changes"]["input_per_mtok"] == ["1.000000", "3.000000"]

    resp = client.post("/admin/observability/modelprice/", {
        "action": "recompute_costs", "_selected_action": [price.pk], "apply": "1",
        "since": "2020-01-01 00:00", "confirm": "on",
    })  # fmt: skip
    assert resp.status_code == 302
    span = Span.objects.get(name="llm")
    assert span.cost_usd == Decimal("3")
    assert Trace.objects.get(pk=span.trace_id).cost_usd == Decimal("3")
    summary = obs.get_metrics_summary()["summary"]
    assert summary["total_cost_usd"] == pytest.approx(3.0)
    event = AuditEvent.objects.get(action="price.costs_recomputed")
    assert event.data["models"] == ["acme-1"] and event.data["spans_updated"] == 1


def test_the_match_check_names_the_winning_price() -> None:
    client = login(make_user("admin"))
    ModelPrice.objects.create(provider="openai", pattern=r"gpt-4o(-\d{4}-\d{2}-\d{2})?", display_name="GPT-4o test",
                              input_per_mtok=1, output_per_mtok=1, effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    resp = client.get("/admin/observability/modelprice/match/?model=gpt-4o-2024-08-06&provider=openai")
    assert resp.status_code == 200 and b"GPT-4o test" in resp.content
    resp = client.get("/admin/observability/modelprice/match/?model=gpt-4o-mini-xyz")
    assert b"No price matches" in resp.content


def test_unpriced_spans_are_listed_for_admins() -> None:
    obs = get_observability()
    with obs.trace_span("llm", kind="llm") as span:
        span.set_tokens(input_tokens=5, output_tokens=5, model="mystery-model")
    flushed()
    resp = login(make_user("admin")).get("/admin/observability/unpricedspan/")
    assert resp.status_code == 200 and b"mystery-model" in resp.content
