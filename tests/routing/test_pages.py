"""Routing and cache pages: what viewers and admins see and may do."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from routing import response_cache as rc
from routing.models import CacheEntry, RoutingDecision
from tests.factories import make_user
from tests.helpers import login

pytestmark = pytest.mark.django_db


def cached(namespace: str, text: str = "How do I restart nginx?") -> CacheEntry:
    return CacheEntry.objects.create(namespace=namespace, key_hash=uuid.uuid4().hex, messages=[], prompt_text=text,
                                     response={"content": "x"}, model="sim/simple", size_bytes=100,
                                     expires_at=timezone.now() + timedelta(hours=1))  # fmt: skip


def test_every_namespace_with_entries_can_be_purged_even_without_recent_lookups() -> None:
    quiet = f"token:ops:quiet-{uuid.uuid4().hex[:6]}"
    cached(quiet)
    admin = login(make_user("admin"))
    page = admin.get("/cache/").content.decode()
    assert quiet in page and 'name="namespace" value="' + quiet in page
    assert "/admin/routing/cachepolicy/" in page  # the policy admin is one click away
    admin.post("/cache/purge/", {"namespace": quiet})
    assert not CacheEntry.objects.filter(namespace=quiet).exists()
    viewer_page = login(make_user("viewer")).get("/cache/").content.decode()
    assert "Purge" not in viewer_page and "/admin/routing/cachepolicy/" not in viewer_page


def test_the_cache_page_and_its_live_data_follow_one_namespace() -> None:
    mine, other = f"ns-{time.time_ns()}", f"ns-other-{time.time_ns()}"
    cached(mine, "a question of mine")
    cached(other, "a question of theirs")
    rc.record(mine, "hit", saved_usd=Decimal("0.004"), saved_ms=900)
    rc.record(mine, "miss")
    rc.record(other, "miss")
    viewer = login(make_user("viewer"))
    page = viewer.get(f"/cache/?ns={mine}").content.decode()
    assert "a question of mine" in page and "a question of theirs" not in page
    data = viewer.get(f"/cache/stats.json?window=1h&ns={mine}").json()
    assert data["summary"]["hits"] == 1 and data["summary"]["misses"] == 1
    series = data["series"]
    assert series["hit_rate"][-1] == pytest.approx(0.5)
    assert series["saved_usd"][-1] == pytest.approx(0.004) and series["saved_ms"][-1] == 900


def test_the_routing_page_lists_decisions_with_their_model_and_reason() -> None:
    RoutingDecision.objects.create(created_at=timezone.now(), complexity="complex", score=0.8,
                                   decided_by="learned", chosen_model="sim/complex", reason="a reason to show",
                                   estimated_cost_usd=Decimal("0.01"), baseline_cost_usd=Decimal("0.02"))  # fmt: skip
    page = login(make_user("viewer")).get("/routing/?window=1h").content.decode()
    assert 'id="decisions"' in page and "a reason to show" in page and "sim/complex" in page
    assert "learned" in page


@pytest.fixture
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from routing import catalog

    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                 "AIOS_OPENAI_COMPATIBLE_BASE_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    catalog.endpoints.invalidate()
    catalog.credentials.invalidate()


def test_every_page_says_when_the_simulator_serves_a_tier(no_keys: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from routing import catalog

    viewer = login(make_user("viewer"))
    for url in ("/", "/traces/", "/routing/", "/cache/", "/evaluation/"):
        page = viewer.get(url).content.decode()
        assert 'id="simulated-banner"' in page and "simple, medium, complex tiers" in page, url
    routing_page = viewer.get("/routing/").content.decode()
    assert routing_page.count('class="pill pill-sim"') >= 3  # the simulator's catalog rows are marked
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")  # OpenAI models cover every tier
    catalog.endpoints.invalidate()
    assert 'id="simulated-banner"' not in viewer.get("/cache/").content.decode()
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-real")  # Claude serves the complex tier only
    catalog.endpoints.invalidate()
    assert "The simple, medium tiers are served by the simulator" in viewer.get("/cache/").content.decode()
