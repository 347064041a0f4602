"""Admins edit prices (validated, audited); costs only change through the audited recompute."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
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


def _span_at(started_at: datetime, model: str, provider: str) -> None:
    from observability.tracing import Span as OpenSpan
    from observability.writer import get_writer

    span = OpenSpan(get_writer(), f"chat {provider}", "llm", "pricing", None)
    span.set_tokens(input_tokens=1_000_000, output_tokens=0, model=model, provider=provider)
    span.started_at = started_at
    span.end()


def test_recomputing_prices_each_span_by_the_rule_not_with_the_selected_row() -> None:
    from observability.pricing import bump_price_version
    from observability.services import costs_recompute

    # Recorded while the model had no price: cost unknown.
    _span_at(datetime(2024, 1, 10, tzinfo=UTC), "acme-2", "acme")  # -> old ($1)
    _span_at(datetime(2024, 7, 10, tzinfo=UTC), "acme-2", "acme")  # -> newer row ($2)
    _span_at(datetime(2024, 10, 10, tzinfo=UTC), "acme-2", "acme")  # -> higher priority row ($7)
    _span_at(datetime(2024, 1, 10, tzinfo=UTC), "acme-2", "acme-eu")  # -> its provider's row ($9)
    flushed()
    assert set(Span.objects.values_list("cost_status", flat=True)) == {"unknown_model"}

    def row(usd: str, day: datetime, priority: int = 0, provider: str = "acme") -> ModelPrice:
        rate = Decimal(usd)
        return ModelPrice.objects.create(provider=provider, pattern="acme-2", input_per_mtok=rate,
                                         output_per_mtok=rate, effective_from=day, priority=priority)  # fmt: skip

    old = row("1", datetime(2020, 1, 1, tzinfo=UTC))
    row("2", datetime(2024, 6, 1, tzinfo=UTC))
    row("7", datetime(2024, 9, 1, tzinfo=UTC), priority=5)
    row("9", datetime(2020, 1, 1, tzinfo=UTC), provider="acme-eu")
    bump_price_version()

    result = costs_recompute(price=old, since=datetime(2023, 1, 1, tzinfo=UTC), actor=make_user("admin"))
    assert result["spans_checked"] == 4 and result["spans_updated"] == 4
    costs = sorted((s.started_at.month, s.provider, s.cost_usd) for s in Span.objects.all())
    assert costs == [(1, "acme", Decimal(1)), (1, "acme-eu", Decimal(9)), (7, "acme", Decimal(2)),
                     (10, "acme", Decimal(7))]  # fmt: skip
    assert {t.cost_usd for t in Trace.objects.all()} == {Decimal(1), Decimal(2), Decimal(7), Decimal(9)}
    summary = get_observability().get_metrics_summary(timedelta(days=365), now=datetime(2024, 12, 31, tzinfo=UTC))
    assert summary["summary"]["total_cost_usd"] == pytest.approx(19.0)
    assert summary["summary"]["unpriced_calls"] == 0
    again = costs_recompute(price=old, since=datetime(2023, 1, 1, tzinfo=UTC), actor=None)
    assert again["spans_updated"] == 0  # already right: nothing rewritten


def test_the_price_history_link_finds_a_pattern_with_special_characters() -> None:
    from html import unescape

    client = login(make_user("admin"))
    pattern = r"acme-(1|2)+x&y"
    ModelPrice.objects.create(provider="acme", pattern=pattern, display_name="Odd", input_per_mtok=1,
                              output_per_mtok=1, effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    ModelPrice.objects.create(provider="acme", pattern="acme-other", display_name="Other", input_per_mtok=1,
                              output_per_mtok=1, effective_from="2020-01-01T00:00:00Z")  # fmt: skip
    listing = client.get("/admin/observability/modelprice/").content.decode()
    href = unescape(re.search(r'href="([^"]*\?pattern=[^"]*acme-%28[^"]*)"', listing).group(1))
    history = client.get(href)
    assert history.status_code == 200
    assert [p.pattern for p in history.context["cl"].result_list] == [pattern]
