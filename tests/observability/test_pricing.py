"""Cost arithmetic against the admin's price table."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from observability.models import ModelPrice
from observability.pricing import cost_of, prices

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def add_price(pattern: str, inp: str, out: str, cached: str | None = None, *, provider: str = "openai",
              effective: datetime = T0, priority: int = 0) -> ModelPrice:  # fmt: skip
    row = ModelPrice.objects.create(
        provider=provider, pattern=pattern, input_per_mtok=Decimal(inp), output_per_mtok=Decimal(out),
        cached_input_per_mtok=Decimal(cached) if cached else None, effective_from=effective, priority=priority,
    )  # fmt: skip
    prices.invalidate()
    return row


@pytest.fixture(autouse=True)
def _only_our_prices() -> None:
    ModelPrice.objects.all().delete()
    prices.invalidate()


def usd(
    model: str, at: datetime = datetime(2025, 6, 1, tzinfo=UTC), provider: str = "openai", **tokens: int
) -> Decimal | None:
    return cost_of(prices.price_for(model, at, provider), **tokens).usd


def test_uncached_cached_and_output_tokens_are_priced_apart() -> None:
    add_price(r"gpt-4o-mini", "0.15", "0.60", "0.075")
    # 1,000,000 input of which 400,000 cached, 100,000 output:
    # 600,000 x 0.15 + 400,000 x 0.075 + 100,000 x 0.60, per million = 0.09 + 0.03 + 0.06
    assert usd("gpt-4o-mini", input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=100_000) == Decimal(
        "0.18"
    )


def test_cached_tokens_default_to_the_input_price() -> None:
    add_price(r"m", "1.00", "2.00")
    assert usd("m", input_tokens=1_000_000, cached_input_tokens=500_000, output_tokens=0) == Decimal("1.00")


def test_a_pattern_must_match_the_whole_name() -> None:
    add_price(r"gpt-4o(-\d{4}-\d{2}-\d{2})?", "2.50", "10.00")
    assert usd("gpt-4o-2024-08-06", input_tokens=1_000_000) == Decimal("2.50")
    assert usd("gpt-4o-mini", input_tokens=1_000_000) is None


def test_dots_in_seeded_patterns_are_escaped() -> None:
    add_price(r"gemini-1\.5-flash(-\d{3}|-latest)?", "0.075", "0.30", provider="gemini")
    assert usd("gemini-1.5-flash-002", provider="gemini", input_tokens=1_000_000) == Decimal("0.075")
    assert usd("gemini-1x5-flash", provider="gemini", input_tokens=1_000_000) is None


def test_the_price_in_effect_at_the_span_start_applies() -> None:
    add_price(r"m", "1.00", "1.00", effective=datetime(2025, 1, 1, tzinfo=UTC))
    add_price(r"m", "2.00", "2.00", effective=datetime(2025, 3, 1, tzinfo=UTC))
    assert usd("m", at=datetime(2025, 2, 1, tzinfo=UTC), input_tokens=1_000_000) == Decimal("1.00")
    assert usd("m", at=datetime(2025, 4, 1, tzinfo=UTC), input_tokens=1_000_000) == Decimal("2.00")
    assert usd("m", at=datetime(2024, 12, 1, tzinfo=UTC), input_tokens=1_000_000) is None


def test_the_highest_priority_wins_then_the_newest() -> None:
    add_price(r"gpt-.*", "9.00", "9.00", priority=0, effective=datetime(2025, 2, 1, tzinfo=UTC))
    add_price(r"gpt-4o", "2.50", "10.00", priority=10)
    assert usd("gpt-4o", input_tokens=1_000_000) == Decimal("2.50")
    assert usd("gpt-4-turbo", input_tokens=1_000_000) == Decimal("9.00")


def test_an_unknown_model_is_flagged_not_priced_at_zero() -> None:
    cost = cost_of(prices.price_for("brand-new-model", T0, "openai"), input_tokens=10, output_tokens=10)
    assert cost.usd is None and cost.status == "unknown_model"


def test_a_span_without_tokens_costs_nothing_and_needs_no_price() -> None:
    cost = cost_of(None, input_tokens=0, output_tokens=0)
    assert cost.usd == 0 and cost.status == "none"


def test_the_seed_prices_the_routed_models() -> None:
    import importlib

    from django.apps import apps

    importlib.import_module("observability.migrations.0003_seed_model_prices").seed(apps, None)
    prices.invalidate()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expected = {
        ("gemini-1.5-flash", "gemini"): ("0.075", "0.30"),
        ("gpt-4o-mini", "openai"): ("0.15", "0.60"),
        ("claude-3-5-sonnet-20241022", "anthropic"): ("3.00", "15.00"),
        ("gpt-4o", "openai"): ("2.50", "10.00"),
    }
    for (model, provider), (inp, out) in expected.items():
        price = prices.price_for(model, now, provider)
        assert price is not None, model
        assert (price.input_per_mtok, price.output_per_mtok) == (Decimal(inp), Decimal(out)), model


def test_gpt_4o_2024_05_13_is_priced_as_it_was_not_as_its_family() -> None:
    from tests.seeds import ensure_seed_data

    ensure_seed_data()
    prices.invalidate()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    may = prices.price_for("gpt-4o-2024-05-13", now, "openai")
    august = prices.price_for("gpt-4o-2024-08-06", now, "openai")
    assert may is not None and (may.input_per_mtok, may.output_per_mtok) == (Decimal("5"), Decimal("15"))
    assert august is not None and (august.input_per_mtok, august.output_per_mtok) == (Decimal("2.5"), Decimal("10"))


@pytest.mark.django_db(transaction=True)  # the refresh runs in a thread, on its own connection
def test_a_price_change_reaches_a_process_that_prices_on_its_event_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    from observability import pricing

    monkeypatch.setattr(pricing, "RECHECK_S", 0.05)
    add_price("loop-model", "1", "1")
    prices.price_for("loop-model", T0, "openai")  # loaded (as a gateway has after its first request)
    ModelPrice.objects.filter(pattern="loop-model").update(input_per_mtok=Decimal(4))
    # Another process changed the price: only the shared version moves (no local invalidate).
    pricing.cache.set(pricing.VERSION_KEY, (pricing.cache.get(pricing.VERSION_KEY) or 0) + 1, timeout=None)

    async def price_on_the_loop() -> Decimal:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            price = prices.price_for("loop-model", T0, "openai")  # never queries here: refreshes in a thread
            if price is not None and price.input_per_mtok == 4:
                return price.input_per_mtok
            await asyncio.sleep(0.05)
        return price.input_per_mtok if price else Decimal(-1)

    assert asyncio.run(price_on_the_loop()) == Decimal(4)
